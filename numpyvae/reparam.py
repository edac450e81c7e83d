"""The reparameterization trick and its backward along the eps-path.

Sampling z ~ N(mu, diag exp(logvar)) directly has no derivative with respect to
mu and logvar. Writing the sample as a deterministic function of (mu, logvar)
and an independent noise eps ~ N(0, I) moves the randomness out of the way:

    z = mu + sigma * eps,   sigma = exp(logvar / 2)

Shapes: mu, logvar (B, Z); eps and z (K, B, Z) for K samples per example.
"""
from __future__ import annotations

import numpy as np

from ._validate import positive_int

__all__ = ["sample_eps", "reparameterize", "reparameterize_backward", "tril_factor",
           "reparameterize_full", "reparameterize_full_backward"]


def sample_eps(rng: np.random.Generator, k: int, batch: int, z_dim: int,
               dtype=np.float64):
    """Draw eps ~ N(0, I) of shape (K, B, Z) from ``rng``.

    Derivation: derivations/04_reparameterization.md, eq. (4.3)
    """
    shape = tuple(positive_int(name, v) for name, v in (("k", k), ("batch", batch), ("z_dim", z_dim)))
    return rng.standard_normal(shape, dtype=dtype)


def _check(mu, logvar, eps):
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"mu and logvar must both have shape (B, Z); got "
                         f"mu {mu.shape}, logvar {logvar.shape}")
    if eps.ndim != 3 or eps.shape[1:] != mu.shape:
        raise ValueError(f"eps must have shape (K, {mu.shape[0]}, {mu.shape[1]}), "
                         f"got {eps.shape}")


def reparameterize(mu, logvar, eps):
    """z = mu + exp(logvar / 2) * eps, broadcast over K samples.

    mu, logvar: (B, Z); eps: (K, B, Z) -> z: (K, B, Z).

    Derivation: derivations/04_reparameterization.md, eq. (4.1)
    """
    _check(mu, logvar, eps)
    sigma = np.exp(0.5 * logvar)
    return mu + sigma * eps


def reparameterize_backward(dz, logvar, eps):
    """Carry dL/dz back to (dL/dmu, dL/dlogvar) with eps held fixed.

    dz: (K, B, Z) -> dmu, dlogvar: (B, Z), where
    dmu = sum_k dz_k and dlogvar = sum_k dz_k * eps_k * sigma / 2.

    Derivation: derivations/04_reparameterization.md, eq. (4.2)
    """
    if dz.shape != eps.shape:
        raise ValueError(f"dz must have the shape of eps {eps.shape}, got {dz.shape}")
    sigma = np.exp(0.5 * logvar)
    dmu = dz.sum(axis=0)
    dlogvar = 0.5 * sigma * (dz * eps).sum(axis=0)
    return dmu, dlogvar


# ---------------------------------------------------------------- full covariance
def tril_factor(logvar, off):
    """The lower-triangular factor L of a full covariance Sigma = L L^T.

    logvar: (B, Z) gives the positive diagonal L_ii = exp(logvar_i / 2) (the exp of the
    raw diagonal logvar_i / 2, so off = 0 is the diagonal posterior exactly);
    off: (B, Z(Z-1)/2) fills the strictly lower triangle row by row
    (``np.tril_indices(Z, -1)`` order). Returns L: (B, Z, Z).

    Derivation: derivations/10_model_family.md, eq. (10.5)
    """
    B, Z = logvar.shape
    if off.shape != (B, Z * (Z - 1) // 2):
        raise ValueError(f"off must have shape ({B}, {Z * (Z - 1) // 2}), got {off.shape}")
    L = np.zeros((B, Z, Z), dtype=logvar.dtype)
    rows, cols = np.tril_indices(Z, -1)
    L[:, rows, cols] = off
    idx = np.arange(Z)
    L[:, idx, idx] = np.exp(0.5 * logvar)
    return L


def reparameterize_full(mu, logvar, off, eps):
    """z = mu + L eps with L = ``tril_factor(logvar, off)``, broadcast over K samples.

    mu, logvar: (B, Z); off: (B, Z(Z-1)/2); eps: (K, B, Z) -> z: (K, B, Z).

    Derivation: derivations/10_model_family.md, eq. (10.5)
    """
    _check(mu, logvar, eps)
    L = tril_factor(logvar, off)
    return mu + np.einsum("bij,kbj->kbi", L, eps)


def reparameterize_full_backward(dz, logvar, off, eps):
    """Carry dL/dz back to (dmu, dlogvar, doff) through z = mu + L eps, eps held fixed.

    dz: (K, B, Z). The factor's gradient is G = sum_k dz_k eps_k^T (B, Z, Z); its strictly
    lower entries are doff, and its diagonal times dL_ii/dlogvar_i = L_ii / 2 is dlogvar.
    Returns dmu, dlogvar (B, Z) and doff (B, Z(Z-1)/2).

    Derivation: derivations/10_model_family.md, eq. (10.6)
    """
    if dz.shape != eps.shape:
        raise ValueError(f"dz must have the shape of eps {eps.shape}, got {dz.shape}")
    Z = logvar.shape[1]
    G = np.einsum("kbi,kbj->bij", dz, eps)          # dL = sum_k dz eps^T
    rows, cols = np.tril_indices(Z, -1)
    idx = np.arange(Z)
    dmu = dz.sum(axis=0)
    dlogvar = 0.5 * np.exp(0.5 * logvar) * G[:, idx, idx]
    doff = G[:, rows, cols]
    return dmu, dlogvar, doff
