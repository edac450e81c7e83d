"""Gaussian log densities and KL divergences, with the gradients the VAE uses.

All functions sum over the last axis (the latent dimensions) and broadcast over
the leading ones, so ``mu: (B, Z)`` gives ``(B,)`` and ``z: (K, B, Z)`` gives ``(K, B)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["log_normal_diag", "log_std_normal", "kl_normal_std", "kl_normal_std_grad",
           "kl_normal_normal", "kl_mvn", "kl_monte_carlo", "kl_full_std", "kl_full_std_grad"]

#: log(2 pi), the one definition every Gaussian density in the package uses. A Python float:
#: a NumPy float64 scalar would turn float32 arrays into float64 (NumPy 2, NEP 50).
LOG_2PI = float(np.log(2 * np.pi))


def log_normal_diag(z, mu, logvar):
    """log N(z; mu, diag exp(logvar)), summed over the last axis.

    Derivation: derivations/02_kl.md, eq. (2.8)
    """
    d = z - mu
    return -0.5 * np.sum(LOG_2PI + logvar + d * d * np.exp(-logvar), axis=-1)


def log_std_normal(z):
    """log N(z; 0, I), the prior log p(z), summed over the last axis.

    Derivation: derivations/01_generative_model.md, eq. (1.3)
    Derivation: derivations/02_kl.md, eq. (2.8)
    """
    return -0.5 * np.sum(LOG_2PI + z * z, axis=-1)


def kl_normal_std(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in closed form.

    0.5 * sum(mu^2 + exp(logvar) - logvar - 1): mu, logvar (..., Z) -> (...).
    (Liao's slide writes this expression as -KL; it is +KL, and it is >= 0.)

    Derivation: derivations/02_kl.md, eq. (2.3)
    """
    # expm1(v) - v instead of exp(v) - v - 1: no cancellation near v = 0, so KL >= 0 holds
    return 0.5 * np.sum(mu * mu + (np.expm1(logvar) - logvar), axis=-1)


def kl_normal_std_grad(mu, logvar):
    """Gradients of ``kl_normal_std``: dKL/dmu = mu, dKL/dlogvar = (exp(logvar) - 1) / 2.

    Derivation: derivations/02_kl.md, eq. (2.4)
    """
    return mu.copy(), 0.5 * np.expm1(logvar)


def kl_normal_normal(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)), summed over the last axis.

    Per dimension: 0.5 * (logvar_p - logvar_q + (e^logvar_q + (mu_q - mu_p)^2) / e^logvar_p - 1).

    Derivation: derivations/02_kl.md, eq. (2.6)
    """
    d = mu_q - mu_p
    return 0.5 * np.sum(logvar_p - logvar_q + (np.exp(logvar_q) + d * d) * np.exp(-logvar_p) - 1,
                        axis=-1)


def kl_mvn(mu_q, cov_q, mu_p, cov_p):
    """KL(N(mu_q, cov_q) || N(mu_p, cov_p)) for full covariance matrices.

    0.5 * (tr(S_p^-1 S_q) + (m_p - m_q)^T S_p^-1 (m_p - m_q) - d + log det S_p - log det S_q).
    mu_q, mu_p: (..., d); cov_q, cov_p: (d, d) or (..., d, d) -> (...).

    Derivation: derivations/02_kl.md, eq. (2.5)
    """
    mu_q, mu_p, cov_q, cov_p = (np.asarray(a) for a in (mu_q, mu_p, cov_q, cov_p))
    # float32 in, float32 out; anything else (integers, mixed) is computed in float64
    dtype = np.result_type(mu_q, mu_p, cov_q, cov_p, np.float32)
    mu_q, mu_p, cov_q, cov_p = (a.astype(dtype, copy=False) for a in (mu_q, mu_p, cov_q, cov_p))
    d = mu_q.shape[-1]
    if cov_q.shape[-2:] != (d, d) or cov_p.shape[-2:] != (d, d):
        raise ValueError(f"cov_q and cov_p must be ({d}, {d}) to match the means, "
                         f"got {cov_q.shape} and {cov_p.shape}")
    Lp = np.linalg.cholesky(cov_p)
    Lq = np.linalg.cholesky(cov_q)
    logdet_p = 2 * np.sum(np.log(np.diagonal(Lp, axis1=-2, axis2=-1)), axis=-1)
    logdet_q = 2 * np.sum(np.log(np.diagonal(Lq, axis1=-2, axis2=-1)), axis=-1)
    trace = np.trace(np.linalg.solve(cov_p, cov_q), axis1=-2, axis2=-1)
    diff = (mu_p - mu_q)[..., None]
    maha = np.sum(diff * np.linalg.solve(cov_p, diff), axis=(-2, -1))
    return 0.5 * (trace + maha - d + logdet_p - logdet_q)


def kl_monte_carlo(z, mu, logvar):
    """Single-sample Monte Carlo KL, log q(z|x) - log p(z), and its pathwise gradients.

    z: (K, B, Z) with z = mu + sigma * eps; mu, logvar: (B, Z).
    Returns ``(kl, dz, dmu, dlogvar)``: kl (K, B); dz = d kl / dz (K, B, Z) holding
    (mu, logvar) fixed; dmu, dlogvar (K, B, Z): the partials at fixed z. The total
    gradient along the eps-path is dz carried through ``reparameterize_backward``
    plus the partials summed over K.

    Derivation: derivations/02_kl.md, eq. (2.7)
    """
    kl = log_normal_diag(z, mu, logvar) - log_std_normal(z)
    inv_var = np.exp(-logvar)
    r = (z - mu) * inv_var                   # (z - mu) / sigma^2
    dz = -r + z                              # d/dz [log q - log p]
    dmu = r                                  # d log q / dmu at fixed z
    dlogvar = -0.5 + 0.5 * (z - mu) * r      # d log q / dlogvar at fixed z
    return kl, dz, dmu, dlogvar


def kl_full_std(mu, logvar, off):
    """KL(N(mu, L L^T) || N(0, I)) for L = ``reparam.tril_factor(logvar, off)``.

    0.5 * (sum_ij L_ij^2 + |mu|^2 - Z) - sum_i log L_ii, which is the diagonal KL
    ``kl_normal_std(mu, logvar)`` plus 0.5 * sum(off^2). mu, logvar (B, Z); off (B, Z(Z-1)/2).

    Derivation: derivations/10_model_family.md, eq. (10.7)
    """
    return kl_normal_std(mu, logvar) + 0.5 * np.sum(off * off, axis=-1)


def kl_full_std_grad(mu, logvar, off):
    """Gradients of ``kl_full_std``: (mu, (exp(logvar) - 1) / 2, off).

    Derivation: derivations/10_model_family.md, eq. (10.8)
    """
    dmu, dlogvar = kl_normal_std_grad(mu, logvar)
    return dmu, dlogvar, off.copy()
