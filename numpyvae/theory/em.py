"""EM on the linear-Gaussian model: ELBO maximisation by coordinate ascent, with an exact E-step.

The ELBO L(q, theta) bounds log p_theta(x) for every q (derivations/03_elbo.md, eq. (3.4)). EM climbs it one
coordinate at a time:

    E-step: q <- p_theta(z | x)          (exact posterior; the bound touches log p(x))
    M-step: theta <- argmax_theta E_q[log p_theta(x, z)]   (q fixed)

so log p(x) can never go down: after the E-step L = log p_old(x); the M-step raises L;
and log p_new(x) >= L. A VAE cannot do the E-step exactly (no closed-form posterior);
in the linear-Gaussian model of derivations/01_generative_model.md it can, and the fixed point is probabilistic
PCA (Tipping & Bishop 1999). Only numpy.

Derivation: derivations/03_elbo.md, eq. (3.11)
"""

from __future__ import annotations

import numpy as np

from .._validate import positive_int
from .linear_gaussian import LinearGaussian, _check_data

__all__ = ["e_step", "m_step", "em_step", "fit_em"]


def e_step(model, x):
    """Exact E-step: the posterior p(z | x_i) = N(m_i, S) for every row of x.

    model: a ``LinearGaussian``; x: (N, D). Returns m (N, Z) and S (Z, Z) (shared by all
    rows; derivations/01_generative_model.md, eq. (1.9)), i.e. the q that makes the ELBO equal log p(x).

    Derivation: derivations/03_elbo.md, eq. (3.11)
    """
    if not isinstance(model, LinearGaussian):
        raise TypeError(f"model must be a LinearGaussian, got {type(model).__name__}")
    m, S = model.posterior(x)
    return m, S


def m_step(x, m, S, c=None):
    """M-step: the theta = (W, b, c) that maximises sum_i E_q[log p(x_i, z)] for q fixed.

    x: (N, D); m: (N, Z) posterior means; S: (Z, Z) posterior covariance. W and b are
    solved jointly (a least-squares problem in the augmented code [z, 1]); for b fixed
    it reads
        W = (sum_i (x_i - b) m_i^T) (N S + sum_i m_i m_i^T)^{-1},
    and then
        c = (1/(N D)) sum_i [ ||x_i - b - W m_i||^2 + tr(W^T W S) ].
    ``c`` given: keep it fixed. Returns (W (D, Z), b (D,), c float).

    Derivation: derivations/03_elbo.md, eq. (3.12)
    """
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    if x.ndim != 2 or m.ndim != 2 or m.shape[0] != x.shape[0]:
        raise ValueError(f"x must be (N, D) and m (N, Z) with the same N, got {x.shape} and {m.shape}")
    N, D = x.shape
    Z = m.shape[1]
    if S.shape != (Z, Z):
        raise ValueError(f"S must be ({Z}, {Z}) to match m, got {S.shape}")
    # Joint maximisation over (W, b): augment z with a constant 1, so [W b] solves one
    # least-squares problem with second moments E[z z^T] = S + m m^T.
    ones = np.ones((N, 1))
    m1 = np.hstack([m, ones])                                  # (N, Z+1)
    Ezz = m1.T @ m1                                            # sum_i E[z1 z1^T] ...
    Ezz[:Z, :Z] += N * S                                       # ... plus the posterior spread
    Wb = np.linalg.solve(Ezz, m1.T @ x).T                      # (D, Z+1)
    W, b = Wb[:, :Z], Wb[:, Z]
    if c is None:
        resid = x - b - m @ W.T
        c = float((np.sum(resid ** 2) + N * np.trace(W.T @ W @ S)) / (N * D))
    return W, b, float(c)


def em_step(model, x, learn_c=True):
    """One EM iteration: E-step then M-step. Returns a new ``LinearGaussian``.

    Derivation: derivations/03_elbo.md, eq. (3.11)
    """
    m, S = e_step(model, x)
    W, b, c = m_step(x, m, S, c=None if learn_c else model.c)
    return LinearGaussian(W, b, c)


def fit_em(x, z_dim, n_steps=200, c=None, seed=0, init=None):
    """Run EM from a random start; record the average log p(x) and ELBO around each step.

    x: (N, D); z_dim: latent size; c: fixed noise variance, or None to learn it.
    Returns (model, history) where history is a dict of arrays of length n_steps + 1:
    ``log_px`` (mean log p(x) after each step; entry 0 is the start) and
    ``elbo_after_m`` (mean ELBO of the E-step's q under the M-step's theta; entry 0 is
    the start's log p(x), where the bound is tight). EM guarantees
    log_px[t] <= elbo_after_m[t+1] <= log_px[t+1].

    Derivation: derivations/03_elbo.md, eq. (3.11)
    """
    x = _check_data(x, z_dim, c)
    n_steps = positive_int("n_steps", n_steps)
    N, D = x.shape
    if init is None:
        rng = np.random.default_rng(seed)
        scale = np.sqrt(np.var(x, axis=0).mean())
        model = LinearGaussian(scale * rng.normal(size=(D, z_dim)), x.mean(0),
                               c if c is not None else np.var(x, axis=0).mean())
    else:
        model = init
    log_px = [float(model.log_marginal(x).mean())]
    bound = [log_px[0]]
    for _ in range(n_steps):
        m, S = e_step(model, x)
        W, b, c_new = m_step(x, m, S, c=c)
        model = LinearGaussian(W, b, c_new)
        bound.append(float(model.elbo(x, m, q_cov=S).mean()))
        log_px.append(float(model.log_marginal(x).mean()))
    return model, {"log_px": np.array(log_px), "elbo_after_m": np.array(bound)}
