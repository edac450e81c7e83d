"""The linear-Gaussian latent variable model, where every quantity of the VAE story is exact.

Model (Shah's Eqs. (4)-(5) with a linear decoder f(z) = W z + b):

    p(z) = N(0, I_Z),    p(x | z) = N(W z + b, c I_D),    W: (D, Z), b: (D,), c > 0.

Then x = W z + b + sqrt(c) n is a linear map of Gaussians, so the evidence is
p(x) = N(x; b, W W^T + c I) and the posterior p(z | x) is Gaussian too. Because of that,
log p(x), the ELBO of any Gaussian q, and KL(q || p(z|x)) can all be computed in closed
form, which lets tests check identities such as log p(x) = ELBO(q) + KL(q || p(z|x))
(Shah's Eq. (8)) to rounding error. ``ppca_ml`` is the maximum-likelihood fit of this
model (probabilistic PCA, Tipping & Bishop 1999).

Only numpy is used (Cholesky via numpy.linalg, no scipy).

Derivation: derivations/01_generative_model.md, eq. (1.6)
Derivation: derivations/01_generative_model.md, eq. (1.9)
"""

from __future__ import annotations


import numpy as np

from .._validate import as_rng as _as_rng
from .._validate import int_in_range, positive_int
from ..kl import LOG_2PI, kl_mvn, log_std_normal
from ..likelihoods import gaussian_log_prob

__all__ = ["LinearGaussian", "ppca_ml", "ppca_max_log_likelihood"]


class LinearGaussian:
    """Exact linear-Gaussian model p(z) = N(0, I), p(x|z) = N(W z + b, c I).

    W: (x_dim, z_dim) decoder matrix; b: (x_dim,) offset; c: positive scalar noise variance.
    To compare with a VAE built with ``hidden=()`` and ``likelihood="gaussian"`` use
    ``LinearGaussian.from_vae(vae)`` (W = vae.params["dec.out.W"].T, b = vae.params["dec.out.b"],
    c = vae.c).

    Derivation: derivations/01_generative_model.md, eq. (1.6)
    """

    def __init__(self, W, b, c):
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1:
            raise ValueError(f"W must be a 2-D array (x_dim, z_dim), got shape {W.shape}")
        b = np.asarray(b, dtype=np.float64)
        if b.shape != (W.shape[0],):
            raise ValueError(f"b must have shape ({W.shape[0]},) to match W, got {b.shape}")
        c_arr = np.asarray(c, dtype=np.float64)
        if c_arr.ndim != 0 or not np.isfinite(c_arr) or c_arr <= 0:
            raise ValueError(f"c must be a positive finite scalar variance, got {c!r}")
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise ValueError("W and b must be finite")
        self.W = W.copy()
        self.b = b.copy()
        self.c = float(c_arr)
        self.x_dim, self.z_dim = W.shape
        # Marginal covariance of x and its Cholesky factor (eq. 1.6 / 1.7).
        self.cov = self.W @ self.W.T + self.c * np.eye(self.x_dim)
        self.chol = np.linalg.cholesky(self.cov)
        # Posterior precision I + W^T W / c (eq. 1.9): independent of x.
        self.post_precision = np.eye(self.z_dim) + self.W.T @ self.W / self.c
        Lp = np.linalg.cholesky(self.post_precision)
        Lp_inv = np.linalg.solve(Lp, np.eye(self.z_dim))
        self.post_cov = Lp_inv.T @ Lp_inv

    # ------------------------------------------------------------------ helpers
    @classmethod
    def from_vae(cls, vae):
        """Exact model behind a VAE built with hidden=() and likelihood="gaussian".

        Derivation: derivations/01_generative_model.md, eq. (1.4)
        """
        if "dec.out.W" not in vae.params:
            raise ValueError("vae must have a 'dec.out.W' parameter (a VAE with hidden=())")
        cfg = getattr(vae, "config", {}) or {}
        if tuple(cfg.get("hidden", ())) != () or cfg.get("likelihood", "gaussian") != "gaussian":
            raise ValueError(
                "vae must be built with hidden=() and likelihood='gaussian' to be linear-Gaussian, "
                f"got hidden={cfg.get('hidden')!r}, likelihood={cfg.get('likelihood')!r}"
            )
        return cls(np.asarray(vae.params["dec.out.W"]).T, np.asarray(vae.params["dec.out.b"]), vae.c)

    def _check_x(self, x, name="x"):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"{name} must have shape (B, {self.x_dim}), got {x.shape}")
        return x

    def _check_q(self, x, q_mu, q_logvar, q_cov):
        B = x.shape[0]
        q_mu = np.asarray(q_mu, dtype=np.float64)
        if q_mu.shape != (B, self.z_dim):
            raise ValueError(f"q_mu must have shape ({B}, {self.z_dim}), got {q_mu.shape}")
        if (q_logvar is None) == (q_cov is None):
            raise ValueError("give exactly one of q_logvar (B, Z) or q_cov ((Z, Z) or (B, Z, Z))")
        if q_logvar is not None:
            q_logvar = np.asarray(q_logvar, dtype=np.float64)
            if q_logvar.shape != (B, self.z_dim):
                raise ValueError(f"q_logvar must have shape ({B}, {self.z_dim}), got {q_logvar.shape}")
            return q_mu, q_logvar, None
        q_cov = np.asarray(q_cov, dtype=np.float64)
        if q_cov.shape == (self.z_dim, self.z_dim):
            q_cov = np.broadcast_to(q_cov, (B, self.z_dim, self.z_dim))
        if q_cov.shape != (B, self.z_dim, self.z_dim):
            raise ValueError(
                f"q_cov must have shape ({self.z_dim}, {self.z_dim}) or ({B}, {self.z_dim}, {self.z_dim}), "
                f"got {q_cov.shape}"
            )
        return q_mu, None, q_cov

    def _check_z(self, z, B):
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 3 or z.shape[1:] != (B, self.z_dim):
            raise ValueError(f"z must have shape (K, {B}, {self.z_dim}), got {z.shape}")
        return z

    # ------------------------------------------------------------------ densities
    def log_marginal(self, x):
        """Exact log p(x) = log N(x; b, W W^T + c I) via a Cholesky factor.

        x: (B, x_dim) -> (B,) in nats.

        Derivation: derivations/01_generative_model.md, eq. (1.6)
        """
        x = self._check_x(x)
        r = (x - self.b).T  # (D, B)
        y = np.linalg.solve(self.chol, r)  # whitened residuals, L y = r
        logdet = 2.0 * np.sum(np.log(np.diag(self.chol)))
        return -0.5 * (self.x_dim * LOG_2PI + logdet + np.sum(y * y, axis=0))

    def log_px_given_z(self, x, z):
        """log p(x | z) = log N(x; W z + b, c I).  x: (B, D), z: (K, B, Z) -> (K, B).

        Derivation: derivations/01_generative_model.md, eq. (1.4)
        """
        x = self._check_x(x)
        z = self._check_z(z, x.shape[0])
        return gaussian_log_prob(x, z @ self.W.T + self.b, self.c)

    def log_joint(self, x, z):
        """log p(x, z) = log p(z) + log p(x | z).  x: (B, D), z: (K, B, Z) -> (K, B).

        Derivation: derivations/01_generative_model.md, eq. (1.1)
        """
        return self.log_px_given_z(x, z) + log_std_normal(self._check_z(z, np.shape(x)[0]))

    def posterior(self, x):
        """Exact posterior p(z | x) = N(mean, cov).

        x: (B, D) -> (mean (B, Z), cov (Z, Z)); cov = (I + W^T W / c)^{-1} is shared by all x,
        mean = cov W^T (x - b) / c.

        Derivation: derivations/01_generative_model.md, eq. (1.9)
        """
        x = self._check_x(x)
        mean = ((x - self.b) @ self.W) @ self.post_cov / self.c  # post_cov is symmetric
        return mean, self.post_cov.copy()

    def log_posterior(self, z, x):
        """log p(z | x) for z: (K, B, Z), x: (B, D) -> (K, B).

        Derivation: derivations/01_generative_model.md, eq. (1.9)
        """
        x = self._check_x(x)
        z = self._check_z(z, x.shape[0])
        mean, _ = self.posterior(x)
        d = z - mean
        quad = np.einsum("kbi,ij,kbj->kb", d, self.post_precision, d)
        _, logdet_prec = np.linalg.slogdet(self.post_precision)
        return -0.5 * (self.z_dim * LOG_2PI - logdet_prec + quad)

    def optimal_diagonal_q(self, x):
        """The diagonal Gaussian q closest to p(z|x) in KL(q || p(z|x)).

        Its mean is the posterior mean and its precisions are the diagonal of the posterior
        precision: logvar = -log diag(I + W^T W / c). Returns (q_mu (B, Z), q_logvar (B, Z)).
        It equals the exact posterior only when W^T W is diagonal (orthogonal columns of W).

        Derivation: derivations/03_elbo.md, eq. (3.10)
        """
        mean, _ = self.posterior(x)
        logvar = -np.log(np.diag(self.post_precision))
        return mean, np.broadcast_to(logvar, mean.shape).copy()

    # ------------------------------------------------------------------ bounds
    def expected_log_px_given_z(self, x, q_mu, q_logvar=None, q_cov=None):
        """Closed-form E_q[log p(x|z)] for Gaussian q; x (B, D) -> (B,).

        With S the covariance of q: -D/2 log(2 pi c) - (|x - b - W mu|^2 + tr(W^T W S)) / (2c).

        Derivation: derivations/03_elbo.md, eq. (3.6)
        """
        x = self._check_x(x)
        q_mu, q_logvar, q_cov = self._check_q(x, q_mu, q_logvar, q_cov)
        r = x - self.b - q_mu @ self.W.T
        WtW = self.W.T @ self.W
        if q_logvar is not None:
            tr = np.exp(q_logvar) @ np.diag(WtW)
        else:
            tr = np.einsum("ij,bji->b", WtW, q_cov)
        return -0.5 * self.x_dim * (LOG_2PI + np.log(self.c)) - 0.5 * (np.sum(r * r, axis=1) + tr) / self.c

    def expected_log_joint(self, x, q_mu, q_logvar=None, q_cov=None):
        """Closed-form energy term E_q[log p(x, z)] = E_q[log p(x|z)] + E_q[log p(z)]; -> (B,).

        E_q[log p(z)] = -Z/2 log(2 pi) - (|mu|^2 + tr S) / 2.

        Derivation: derivations/03_elbo.md, eq. (3.7)
        """
        x = self._check_x(x)
        q_mu, q_logvar, q_cov = self._check_q(x, q_mu, q_logvar, q_cov)
        tr_s = np.exp(q_logvar).sum(1) if q_logvar is not None else np.einsum("bii->b", q_cov)
        e_lpz = -0.5 * (self.z_dim * LOG_2PI + np.sum(q_mu**2, axis=1) + tr_s)
        return self.expected_log_px_given_z(x, q_mu, q_logvar, q_cov) + e_lpz

    def elbo(self, x, q_mu, q_logvar=None, q_cov=None):
        """Exact ELBO(q) = E_q[log p(x|z)] - KL(q || N(0, I)) for a Gaussian q; -> (B,).

        q is diagonal (q_logvar: (B, Z)) or full (q_cov: (Z, Z) or (B, Z, Z)). Shah's Eq. (8)
        then holds exactly: log_marginal(x) - elbo(x, q) = kl_to_posterior(x, q) >= 0.

        Derivation: derivations/03_elbo.md, eq. (3.4)
        Derivation: derivations/03_elbo.md, eq. (3.6)
        """
        x = self._check_x(x)
        q_mu, q_logvar, q_cov = self._check_q(x, q_mu, q_logvar, q_cov)
        if q_logvar is not None:
            kl = 0.5 * np.sum(q_mu**2 + np.exp(q_logvar) - q_logvar - 1.0, axis=1)
        else:
            _, logdet = np.linalg.slogdet(q_cov)
            kl = 0.5 * (np.einsum("bii->b", q_cov) + np.sum(q_mu**2, axis=1) - self.z_dim - logdet)
        return self.expected_log_px_given_z(x, q_mu, q_logvar, q_cov) - kl

    def kl_to_posterior(self, x, q_mu, q_logvar=None, q_cov=None):
        """KL(q || p(z|x)) for Gaussian q, using ``numpyvae.kl.kl_mvn``; -> (B,).

        Derivation: derivations/03_elbo.md, eq. (3.2)
        """
        x = self._check_x(x)
        q_mu, q_logvar, q_cov = self._check_q(x, q_mu, q_logvar, q_cov)
        if q_logvar is not None:
            q_cov = np.exp(q_logvar)[:, :, None] * np.eye(self.z_dim)
        mean, cov = self.posterior(x)
        cov_b = np.broadcast_to(cov, q_cov.shape)
        return np.asarray(kl_mvn(q_mu, q_cov, mean, cov_b), dtype=np.float64)

    # ------------------------------------------------------------------ sampling
    def sample(self, n, rng=None, method="cholesky", return_z=False):
        """Draw n samples x: (n, D).

        method="cholesky": x = b + L u with L the Cholesky factor of W W^T + c I, u ~ N(0, I_D).
        method="ancestral": z ~ N(0, I), x = b + W z + sqrt(c) noise (then ``return_z=True``
        also returns z: (n, Z)). Both draw from the same p(x).

        Derivation: derivations/01_generative_model.md, eq. (1.7)
        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        n = positive_int("n", n)
        if method not in ("cholesky", "ancestral"):
            raise ValueError(f"method must be 'cholesky' or 'ancestral', got {method!r}")
        g = _as_rng(rng)
        if method == "cholesky":
            if return_z:
                raise ValueError("return_z=True needs method='ancestral' (the Cholesky route has no z)")
            return self.b + g.standard_normal((n, self.x_dim)) @ self.chol.T
        z = g.standard_normal((n, self.z_dim))
        x = self.b + z @ self.W.T + np.sqrt(self.c) * g.standard_normal((n, self.x_dim))
        return (x, z) if return_z else x


def _check_data(x, z_dim, c):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be a 2-D data matrix (N >= 2, D), got shape {x.shape}")
    D = x.shape[1]
    z_dim = int_in_range("z_dim", z_dim, 1, D)
    if c is None and z_dim >= D:
        raise ValueError(f"z_dim must be < x_dim={D} when c is learned (c=None), got {z_dim}")
    if c is not None and (not np.isfinite(c) or c <= 0):
        raise ValueError(f"c must be None or a positive finite variance, got {c!r}")
    return x


def _ppca_eig(x):
    b = x.mean(axis=0)
    xc = x - b
    S = xc.T @ xc / x.shape[0]  # maximum-likelihood (1/N) covariance
    lam, U = np.linalg.eigh(S)
    order = np.argsort(lam)[::-1]
    return b, np.maximum(lam[order], 0.0), U[:, order]


def ppca_ml(x, z_dim, c=None):
    """Probabilistic PCA maximum-likelihood fit (Tipping & Bishop) of the linear-Gaussian model.

    x: (N, D) data. Returns (W (D, z_dim), b (D,), c float) where b is the data mean,
    lambda_1 >= ... >= lambda_D are the eigenvalues of the 1/N sample covariance with
    eigenvectors U, c is the mean of the discarded eigenvalues lambda_{z_dim+1..D} when
    ``c=None`` (else the given c is kept), and W = U_q diag(max(lambda_j - c, 0))^{1/2}
    (determined up to a rotation on the right, which this function fixes to the identity).

    Derivation: derivations/01_generative_model.md, eq. (1.10)
    """
    x = _check_data(x, z_dim, c)
    b, lam, U = _ppca_eig(x)
    if c is None:
        c = float(np.mean(lam[z_dim:]))
        if c <= 0:
            raise ValueError("the discarded eigenvalues are all zero: data lie in a z_dim subspace")
    W = U[:, :z_dim] * np.sqrt(np.maximum(lam[:z_dim] - c, 0.0))
    return W, b, float(c)


def ppca_max_log_likelihood(x, z_dim, c=None):
    """Average log-likelihood per example (nats) at the PPCA maximum, from the eigenvalues.

    With sample-covariance eigenvalues lambda_j and the fitted c, the model covariance has
    eigenvalues max(lambda_j, c) for j <= z_dim and c otherwise, so
    (1/N) sum_n log p(x_n) = -1/2 [D log 2 pi + sum_j log m_j + sum_j lambda_j / m_j].
    Equals ``LinearGaussian(*ppca_ml(x, z_dim, c)).log_marginal(x).mean()``.

    Derivation: derivations/01_generative_model.md, eq. (1.10)
    """
    x = _check_data(x, z_dim, c)
    W, b, c = ppca_ml(x, z_dim, c)
    _, lam, _ = _ppca_eig(x)
    m = np.full_like(lam, c)
    m[:z_dim] = np.maximum(lam[:z_dim], c)
    D = x.shape[1]
    return float(-0.5 * (D * LOG_2PI + np.sum(np.log(m)) + np.sum(lam / m)))
