"""Priors p(z): the standard normal, a learned mixture of Gaussians, and the VampPrior.

Each prior gives log p(z) for codes z (..., Z) and the backward of that log density: the
gradient with respect to z and, for a learned prior, with respect to its own parameters.
The mixture priors have no closed-form KL to a Gaussian q(z|x), so a model with one uses
the Monte Carlo KL, log q(z|x) - log p(z) at the sampled z (note 15, eq. (15.5));
``kl_mixture_bounds`` gives two closed-form numbers that bracket the exact KL.

Shapes: z (..., Z); a mixture has C components with means and log-variances (C, Z) and
log weights (C,); the VampPrior has C pseudo-inputs (C, D) whose encodings are its components.
"""
from __future__ import annotations

import numpy as np

from .kl import LOG_2PI, kl_normal_normal, log_std_normal
from . import _rng, _validate

__all__ = ["log_mixture", "log_mixture_backward", "kl_mixture_bounds", "parse_prior",
           "StandardNormalPrior", "MixturePrior", "VampPrior", "PRIORS"]

PRIORS = ("normal", "mog", "vamp")


def log_mixture(z, means, logvars, log_w):
    """log p(z) = log sum_c exp(log_w_c + log N(z; m_c, diag e^{s_c})), by a stable log-sum-exp.

    z (..., Z); means, logvars (C, Z); log_w (C,) normalised log weights.
    Returns (log_p (...), resp (..., C)): resp_c = the posterior weight of component c at z
    (the softmax of the C terms), which the backward needs.

    The squared distances come from three matrix products (z^2 @ e^{-s}^T - 2 z @ (m e^{-s})^T
    + sum m^2 e^{-s}): memory (N, C) instead of (N, C, Z).

    Derivation: derivations/15_learned_priors.md, eq. (15.3)
    """
    lead = z.shape[:-1]
    zf = z.reshape(-1, z.shape[-1])
    inv = np.exp(-logvars)                                        # (C, Z) precisions
    maha = (zf * zf) @ inv.T - 2 * zf @ (means * inv).T + np.sum(means * means * inv, axis=1)
    terms = log_w - 0.5 * (np.sum(LOG_2PI + logvars, axis=1) + maha)    # (N, C)
    top = terms.max(axis=1, keepdims=True)                        # exp never overflows
    e = np.exp(terms - top)
    total = e.sum(axis=1, keepdims=True)
    log_p = (top + np.log(total))[:, 0]
    return log_p.reshape(lead), (e / total).reshape(lead + (len(log_w),))


def log_mixture_backward(dlog_p, z, means, logvars, resp):
    """Carry dL/dlog p (...) back through ``log_mixture``. -> (dz, dmeans, dlogvars, dlog_w).

    With g_c = dL/dlog p * resp_c and r_c = (z - m_c) e^{-s_c}:
    dz = -sum_c g_c r_c,  dm_c = sum g_c r_c,  ds_c = sum g_c ((z - m_c) r_c - 1) / 2,
    dlog_w_c = sum g_c (sums over the leading axes of z).

    Derivation: derivations/15_learned_priors.md, eq. (15.4)
    """
    zf = z.reshape(-1, z.shape[-1])
    g = (dlog_p[..., None] * resp).reshape(-1, means.shape[0])    # (N, C)
    inv = np.exp(-logvars)
    G = g.sum(axis=0)                                             # (C,)
    gz = g.T @ zf                                                 # (C, Z): sum_n g_nc z_n
    gzz = g.T @ (zf * zf)
    dz = -(zf * (g @ inv) - g @ (means * inv))
    dmeans = inv * (gz - G[:, None] * means)
    dlogvars = 0.5 * (inv * (gzz - 2 * means * gz + G[:, None] * means * means) - G[:, None])
    return dz.reshape(z.shape), dmeans, dlogvars, G


def _log_softmax(a):
    return a - (a.max() + np.log(np.sum(np.exp(a - a.max()))))


def kl_mixture_bounds(mu, logvar, means, logvars, log_w):
    """Two closed-form bounds on KL(q || p) for q = N(mu, diag e^logvar) and a Gaussian mixture p.

    lower = -H(q) - log sum_c w_c N(mu; m_c, diag(e^logvar + e^{s_c}))   (Jensen on log E_q p)
    upper = -log sum_c w_c exp(-KL(q || p_c))                           (a variational bound)
    mu, logvar (B, Z) -> (lower, upper), each (B,). The exact KL, which has no closed form,
    lies between them; the Monte Carlo KL estimates it without bias.

    Derivation: derivations/15_learned_priors.md, eq. (15.6)
    """
    mu_b, lv_b = mu[:, None, :], logvar[:, None, :]               # against (C, Z)
    entropy = 0.5 * np.sum(LOG_2PI + 1 + logvar, axis=-1)
    var_sum = np.exp(lv_b) + np.exp(logvars)
    d = mu_b - means
    log_overlap = log_w - 0.5 * np.sum(LOG_2PI + np.log(var_sum) + d * d / var_sum, axis=-1)
    upper_terms = log_w - kl_normal_normal(mu_b, lv_b, means, logvars)

    def lse(a):
        m = a.max(axis=-1)
        return m + np.log(np.sum(np.exp(a - m[:, None]), axis=-1))

    return -entropy - lse(log_overlap), -lse(upper_terms)


def parse_prior(spec):
    """'normal', 'mog:K' or 'vamp:K' -> (kind, K); K = 0 for the standard normal.

    Derivation: derivations/15_learned_priors.md, eq. (15.3)
    """
    if not isinstance(spec, str):
        raise ValueError(f"prior must be a string such as 'normal', 'mog:10' or 'vamp:500', got {spec!r}")
    kind, _, k = spec.partition(":")
    if kind not in PRIORS:
        raise ValueError(f"prior must be 'normal', 'mog:K' or 'vamp:K', got {spec!r}")
    if kind == "normal":
        if k:
            raise ValueError(f"prior 'normal' takes no component count, got {spec!r}")
        return kind, 0
    if not k.isdigit() or int(k) < 1:
        raise ValueError(f"prior {kind!r} needs a positive component count, e.g. '{kind}:10', got {spec!r}")
    return kind, int(k)


class StandardNormalPrior:
    """p(z) = N(0, I): no parameters; log p(z) = -(Z log 2pi + |z|^2) / 2.

    Derivation: derivations/15_learned_priors.md, eq. (15.1)
    """

    kind, n_components = "normal", 0

    def __init__(self, z_dim, dtype=np.float64):
        self.z_dim = _validate.positive_int("z_dim", z_dim)
        self.dtype = _validate.float_dtype(dtype)

    def param_names(self):
        """Names of the learned arrays (none).

        Derivation: derivations/15_learned_priors.md, eq. (15.1)
        """
        return ()

    def log_prob(self, z):
        """log N(z; 0, I) for z (..., Z) -> (...).

        Derivation: derivations/15_learned_priors.md, eq. (15.1)
        """
        self._z = z
        return log_std_normal(z)

    def backward(self, dlog_p):
        """dL/dz = -dL/dlog p * z for the last ``log_prob``.

        Derivation: derivations/15_learned_priors.md, eq. (15.1)
        """
        return -dlog_p[..., None] * self._z

    def sample(self, n, rng):
        """n codes z ~ N(0, I) -> (n, Z).

        Derivation: derivations/15_learned_priors.md, eq. (15.1)
        """
        return rng.standard_normal((n, self.z_dim)).astype(self.dtype)


class MixturePrior:
    """p(z) = sum_c pi_c N(z; m_c, diag e^{s_c}), pi = softmax(logits): all three learned.

    means (C, Z) start as draws from N(0, I), logvars (C, Z) at 0, logits (C,) at 0 (equal
    weights). ``dmeans``, ``dlogvars``, ``dlogits`` hold the gradients of the last backward.

    Derivation: derivations/15_learned_priors.md, eq. (15.3)
    """

    kind = "mog"

    def __init__(self, n_components, z_dim, seed=0, dtype=np.float64):
        C = _validate.positive_int("n_components", n_components)
        Z = _validate.positive_int("z_dim", z_dim)
        dtype = _validate.float_dtype(dtype)
        rng = _rng.generator(_validate.seed(seed), "prior")
        self.n_components, self.z_dim = C, Z
        self.means = rng.standard_normal((C, Z)).astype(dtype)
        self.logvars = np.zeros((C, Z), dtype)
        self.logits = np.zeros(C, dtype)
        self.dmeans, self.dlogvars, self.dlogits = (np.zeros_like(a) for a in
                                                    (self.means, self.logvars, self.logits))

    def param_names(self):
        """The learned arrays, in the order a flat buffer holds them.

        Derivation: derivations/15_learned_priors.md, eq. (15.3)
        """
        return ("means", "logvars", "logits")

    def log_weights(self):
        """log pi = logits - logsumexp(logits), (C,).

        Derivation: derivations/15_learned_priors.md, eq. (15.3)
        """
        return _log_softmax(self.logits)

    def log_prob(self, z):
        """log p(z) for z (..., Z) -> (...); keeps what ``backward`` needs.

        Derivation: derivations/15_learned_priors.md, eq. (15.3)
        """
        log_p, resp = log_mixture(z, self.means, self.logvars, self.log_weights())
        self._cache = (z, resp)
        return log_p

    def backward(self, dlog_p):
        """Gradients of sum(dlog_p * log p(z)): returns dz, overwrites dmeans, dlogvars, dlogits.

        The logits reach log pi through a log-softmax: dlogits = G - pi * sum(G).

        Derivation: derivations/15_learned_priors.md, eq. (15.4)
        """
        z, resp = self._cache
        dz, dm, ds, G = log_mixture_backward(dlog_p, z, self.means, self.logvars, resp)
        self.dmeans[...], self.dlogvars[...] = dm, ds
        self.dlogits[...] = G - np.exp(self.log_weights()) * G.sum()
        return dz

    def sample(self, n, rng):
        """n codes from the mixture: a component c ~ pi, then z ~ N(m_c, diag e^{s_c}). -> (n, Z).

        Derivation: derivations/15_learned_priors.md, eq. (15.3)
        """
        c = rng.choice(self.n_components, size=n, p=np.exp(self.log_weights()).astype(np.float64))
        eps = rng.standard_normal((n, self.z_dim)).astype(self.means.dtype)
        return self.means[c] + np.exp(0.5 * self.logvars[c]) * eps


class VampPrior:
    """p(z) = (1/C) sum_c q(z | u_c): the encoder's posteriors at C learned pseudo-inputs u_c.

    ``pseudo`` (C, D) are the pseudo-inputs, started at 0.5 plus N(0, 0.1^2) noise (grey images)
    or at given rows. The components (mu_c, logvar_c) = encoder(u_c) change whenever the
    encoder does, so a model computes them in the same encoder pass as q(z|x) and carries
    ``backward``'s (dmu_c, dlogvar_c) back through the encoder to the weights and to ``dpseudo``.

    Derivation: derivations/15_learned_priors.md, eq. (15.7)
    """

    kind = "vamp"

    def __init__(self, n_components, x_dim, seed=0, dtype=np.float64, init=None):
        C = _validate.positive_int("n_components", n_components)
        D = _validate.positive_int("x_dim", x_dim)
        dtype = _validate.float_dtype(dtype)
        rng = _rng.generator(_validate.seed(seed), "prior")
        self.n_components, self.x_dim = C, D
        if init is None:
            self.pseudo = (0.5 + 0.1 * rng.standard_normal((C, D))).astype(dtype)
        else:
            init = np.asarray(init, dtype=dtype)
            if init.shape != (C, D):
                raise ValueError(f"init must have shape ({C}, {D}) (one row per pseudo-input), "
                                 f"got {init.shape}")
            self.pseudo = init.copy()
        self.dpseudo = np.zeros_like(self.pseudo)

    def param_names(self):
        """The learned array: the pseudo-inputs.

        Derivation: derivations/15_learned_priors.md, eq. (15.7)
        """
        return ("pseudo",)

    def log_prob(self, z, mu_u, logvar_u):
        """log p(z) for z (..., Z) given the encodings (mu_u, logvar_u) (C, Z) of ``pseudo``.

        Derivation: derivations/15_learned_priors.md, eq. (15.7)
        """
        log_w = np.full(self.n_components, -np.log(self.n_components), dtype=mu_u.dtype)
        log_p, resp = log_mixture(z, mu_u, logvar_u, log_w)
        self._cache = (z, mu_u, logvar_u, resp)
        return log_p

    def backward(self, dlog_p):
        """Gradients of sum(dlog_p * log p(z)) -> (dz, dmu_u, dlogvar_u).

        The equal weights are fixed; the caller carries (dmu_u, dlogvar_u) through the encoder
        and stores the encoder's input gradient with ``set_input_grad``.

        Derivation: derivations/15_learned_priors.md, eq. (15.8)
        """
        z, mu_u, logvar_u, resp = self._cache
        dz, dmu_u, dlogvar_u, _ = log_mixture_backward(dlog_p, z, mu_u, logvar_u, resp)
        return dz, dmu_u, dlogvar_u

    def set_input_grad(self, du):
        """Store dL/du (C, D), the encoder's gradient at the pseudo-inputs, as ``dpseudo``.

        Derivation: derivations/15_learned_priors.md, eq. (15.8)
        """
        self.dpseudo[...] = du

    def sample(self, n, rng, mu_u, logvar_u):
        """n codes from the equal-weight mixture of the encodings (mu_u, logvar_u) (C, Z). -> (n, Z).

        Derivation: derivations/15_learned_priors.md, eq. (15.7)
        """
        c = rng.integers(self.n_components, size=n)
        eps = rng.standard_normal((n, mu_u.shape[1])).astype(mu_u.dtype)
        return mu_u[c] + np.exp(0.5 * logvar_u[c]) * eps
