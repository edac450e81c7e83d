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

from ._flat import bind_flat
from .kl import LOG_2PI, kl_normal_normal, log_normal_diag, log_std_normal
from .model import VAE, Terms
from .reparam import reparameterize, reparameterize_backward
from . import _registry, _rng, _validate

__all__ = ["log_mixture", "log_mixture_backward", "kl_mixture_bounds", "parse_prior",
           "StandardNormalPrior", "MixturePrior", "VampPrior", "PriorVAE", "PRIORS"]

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
        w = np.exp(self.log_weights().astype(np.float64))
        c = rng.choice(self.n_components, size=n, p=w / w.sum())
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


# ------------------------------------------------------------------ the model with a learned prior


@_registry.register("prior")
class PriorVAE(VAE):
    """The VAE of note 3 with a learned prior p_lambda(z): ``prior="mog:K"`` (a mixture of K
    Gaussians, eq. (15.3)) or ``prior="vamp:K"`` (K pseudo-inputs, eq. (15.7)); ``"normal"``
    gives N(0, I) through the same Monte Carlo path (a test proves it equals the plain model's).

    The KL term is always the Monte Carlo estimate log q(z|x) - log p(z) at the sampled z
    (15.5): no closed form exists, so ``kl="closed"`` (the trainer's default) means the same
    estimate. The prior's parameters live in the flat buffer after the decoder's, as
    ``params["prior.means"]`` ... or ``params["prior.pseudo"]``, so optimizers, copies and
    checkpoints carry them with the weights.

    Derivation: derivations/15_learned_priors.md, eq. (15.5)
    """

    def __init__(self, x_dim, z_dim, hidden=(400,), likelihood="bernoulli", activation="relu",
                 c=1.0, seed=0, dtype=np.float64, init="uniform", prior="mog:10"):
        kind, n = parse_prior(prior)
        dtype = _validate.float_dtype(dtype)
        self.prior_spec = prior
        if kind == "normal":
            self.prior = StandardNormalPrior(z_dim, dtype)
        elif kind == "mog":
            self.prior = MixturePrior(n, z_dim, seed, dtype)
        else:
            self.prior = VampPrior(n, x_dim, seed, dtype)
        super().__init__(x_dim, z_dim, hidden, likelihood, activation, c, seed, dtype, init)
        if kind == "vamp":     # (15.8) needs the encoder's gradient at its input
            for lin in self.enc.linears[:1] or [self.enc_mu, self.enc_logvar]:
                lin.input_grad = True

    def _bind_flat_buffers(self, flat_params=None, flat_grads=None):
        """The weights' entries, then the prior's (see ``VAE._bind_flat_buffers``)."""
        entries = [(f"{name}.{p}", lin, p) for name, lin in self._named_linears() for p in ("W", "b")]
        entries += [(f"prior.{n}", self.prior, n) for n in self.prior.param_names()]
        self.flat_params, self.flat_grads, self.params, self.grads = bind_flat(entries, self.dtype,
                                                                               flat_params, flat_grads)
        self._enc_slice = slice(0, sum(self.params[n].size for n in self.params if n.startswith("enc.")))

    @property
    def config(self) -> dict:
        """``VAE.config`` plus the prior's spelling.

        Derivation: derivations/15_learned_priors.md, eq. (15.3)
        """
        return {**super().config, "prior": self.prior_spec}

    def _repr_extra(self):
        return f", prior={self.prior_spec!r}"

    # ------------------------------------------------------------------ the prior
    def _encode_with_pseudo(self, x):
        """Encoder on x, and for the VampPrior on [x; u] in one pass -> (mu, logvar, mu_u, lv_u)."""
        if self.prior.kind != "vamp":
            return (*self._encode(x), None, None)
        B = len(x)
        mu, logvar = self._encode(np.concatenate([x, self.prior.pseudo.astype(self.dtype)]))
        return mu[:B], logvar[:B], mu[B:], logvar[B:]

    def _log_prior(self, z, comp):
        return self.prior.log_prob(z) if comp[0] is None else self.prior.log_prob(z, *comp)

    def prior_components(self):
        """The prior's components (means (C, Z), log-variances (C, Z), log weights (C,)); for the
        standard normal one component at 0.

        Derivation: derivations/15_learned_priors.md, eq. (15.7)
        """
        if self.prior.kind == "normal":
            return np.zeros((1, self.z_dim)), np.zeros((1, self.z_dim)), np.zeros(1)
        if self.prior.kind == "mog":
            return self.prior.means.copy(), self.prior.logvars.copy(), self.prior.log_weights()
        mu_u, lv_u = self._encode(self.prior.pseudo.astype(self.dtype))
        C = self.prior.n_components
        return mu_u, lv_u, np.full(C, -np.log(C))

    def sample(self, n, rng=None):
        """Ancestral sampling from the learned prior: z ~ p_lambda(z), then the decoder mean.

        Derivation: derivations/15_learned_priors.md, eq. (15.3)
        """
        n = _validate.positive_int("n", n)
        rng = self.rng if rng is None else rng
        m, s, log_w = self.prior_components()
        w = np.exp(log_w.astype(np.float64))
        c = rng.choice(len(log_w), size=n, p=w / w.sum())
        z = m[c] + np.exp(0.5 * s[c]) * rng.standard_normal((n, self.z_dim))
        return self.decode_mean(z.astype(self.dtype))

    def log_weights(self, x, eps, q=None):
        """log w_k = log p(x|z_k) + log p_lambda(z_k) - log q(z_k|x). -> (K, B).

        Derivation: derivations/15_learned_priors.md, eq. (15.5)
        """
        x, eps, q = self._forward_args(x, eps, None, 1.0, "closed", q)
        mu, logvar, mu_u, lv_u = self._encode_with_pseudo(x)
        if q is not None:
            mu, logvar = q
        z = reparameterize(mu, logvar, eps)
        return self.log_px_given_z(x, z) + self._log_prior(z, (mu_u, lv_u)) - log_normal_diag(z, mu, logvar)

    # ---------------------------------------------------------------- objective
    def forward(self, x, eps=None, k=None, beta=1.0, kl="closed", q=None) -> Terms:
        """Negative ELBO with the Monte Carlo KL to the learned prior (15.5).

        loss_b = (1/K) sum_k [-log p(x|z_kb) + beta (log q(z_kb|x) - log p_lambda(z_kb))].
        ``q=(mu, logvar)`` replaces q(z|x) (the VampPrior still encodes its pseudo-inputs).

        Derivation: derivations/15_learned_priors.md, eq. (15.5)
        """
        x, eps, q = self._forward_args(x, eps, k, beta, kl, q)
        K, B, _ = eps.shape
        if q is None:
            mu, logvar, mu_u, lv_u = self._encode_with_pseudo(x)
        else:
            mu, logvar = q
            mu_u = lv_u = None
            if self.prior.kind == "vamp":
                mu_u, lv_u = self._encode(self.prior.pseudo.astype(self.dtype))
        z = reparameterize(mu, logvar, eps)                               # z = mu + sigma * eps
        outs = tuple(o.reshape(K, B, self.x_dim)
                     for o in self._decode_flat(z.reshape(K * B, self.z_dim)))
        log_px_z = self.lik.log_prob(x, *outs)                            # (K, B)
        log_q = log_normal_diag(z, mu, logvar)
        log_p = self._log_prior(z, (mu_u, lv_u))                          # (K, B)
        recon = -log_px_z.mean(axis=0)
        kl_pe = (log_q - log_p).mean(axis=0)
        self._cache = dict(x=x, mu=mu, logvar=logvar, eps=eps, z=z, outs=outs, beta=float(beta),
                           encoder=q is None)
        elbo_pe = -(recon + kl_pe)
        return Terms(loss=float(np.mean(recon + beta * kl_pe)), elbo=float(elbo_pe.mean()),
                     recon=float(recon.mean()), kl=float(kl_pe.mean()), beta=float(beta),
                     elbo_per_example=elbo_pe, recon_per_example=recon, kl_per_example=kl_pe,
                     log_px_z=log_px_z, mu=mu, logvar=logvar, z=z, eps=eps)

    def backward(self):
        """Gradients of the last ``forward``'s loss, the five steps of note 7 with the prior's
        backward (15.4) at step 4 and, for the VampPrior, the encoder run back over [x; u] (15.8).

        Derivation: derivations/15_learned_priors.md, eq. (15.8)
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError("backward() needs a forward() first")
        x, mu, logvar, eps, z, beta = (cache[n] for n in ("x", "mu", "logvar", "eps", "z", "beta"))
        K, B, Z = eps.shape
        scale = 1.0 / (K * B)
        # 1. likelihood
        douts = [(-scale * d).reshape(K * B, self.x_dim) for d in self.lik.grad(x, *cache["outs"])]
        # 2. decoder, back to z
        dz = self._decode_backward(douts).reshape(K, B, Z)
        # 4a. the sampled KL's dependence on z: log q (at fixed mu, logvar) and -log p(z)
        r = (z - mu) * np.exp(-logvar)                                    # (z - mu) / sigma^2
        w = beta * scale
        prior_out = self.prior.backward(np.full((K, B), -w, dtype=self.dtype))
        dz_prior, dmu_u, dlv_u = prior_out if isinstance(prior_out, tuple) else (prior_out, None, None)
        dz = dz - w * r + dz_prior
        # 3. reparameterization, eps held fixed
        dmu, dlogvar = reparameterize_backward(dz, logvar, eps)
        # 4b. log q's direct dependence on (mu, logvar) at fixed z
        dmu = dmu + w * r.sum(axis=0)
        dlogvar = dlogvar + w * (-0.5 + 0.5 * (z - mu) * r).sum(axis=0)
        self.dmu, self.dlogvar = dmu, dlogvar
        # 5. encoder: the data's rows and, for the VampPrior, the pseudo-inputs' rows
        if dmu_u is not None:
            if cache["encoder"]:
                dmu, dlogvar = np.concatenate([dmu, dmu_u]), np.concatenate([dlogvar, dlv_u])
            else:
                dmu, dlogvar = dmu_u, dlv_u
        elif not cache["encoder"]:
            self.flat_grads[self._enc_slice] = 0      # the encoder took no part
            return
        dh_mu = self.enc_mu.backward(dmu)
        dh_logvar = self.enc_logvar.backward(dlogvar)
        if self.enc.linears:
            dx = self.enc.backward(dh_mu + dh_logvar)
        else:                                         # the heads read the input itself
            dx = None if dh_mu is None else dh_mu + dh_logvar
        if dmu_u is not None:
            self.prior.set_input_grad(dx[len(dx) - self.prior.n_components:])
