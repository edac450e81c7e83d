"""Maximum entropy at a fixed variance: why the Gaussian is the natural default.

Among all densities on the real line with a given mean and variance, the Gaussian has the
largest differential entropy (Liao's slides, "maximum entropy" argument). This module gives
the closed-form entropies of a few familiar zero-mean densities that all share the same
variance, a seeded Monte Carlo estimate for a two-component Gaussian mixture (whose entropy
has no closed form), and the log densities / samplers used to check every number by Monte
Carlo.

Derivation: derivations/12_maximum_entropy.md, eq. (12.2)
Derivation: derivations/12_maximum_entropy.md, eq. (12.3)
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validate import as_rng as _rng
from .._validate import positive_int
from ..kl import LOG_2PI

__all__ = [
    "DISTRIBUTIONS",
    "gaussian_entropy",
    "entropies_at_variance",
    "log_density_at_variance",
    "sample_at_variance",
    "entropy_monte_carlo",
]

#: The zero-mean families compared at equal variance.
DISTRIBUTIONS = ("gaussian", "laplace", "uniform", "logistic", "mixture")

def _check_var(var, name="var"):
    v = np.asarray(var, dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be a positive finite variance, got {var!r}")
    return v


def _check_separation(separation):
    if not isinstance(separation, numbers.Real) or not (0.0 <= separation < 1.0):
        raise ValueError(
            f"separation must be a real number in [0, 1) (component offset as a fraction of "
            f"the standard deviation), got {separation!r}"
        )
    return float(separation)


def _check_name(name):
    if name not in DISTRIBUTIONS:
        raise ValueError(f"name must be one of {DISTRIBUTIONS}, got {name!r}")
    return name


def gaussian_entropy(var):
    """Differential entropy of N(mu, var) in nats: 0.5 * log(2 pi e var).

    var: scalar or array of positive variances -> same shape (float or ndarray).
    It does not depend on the mean. This is the largest entropy any density with variance
    ``var`` can have.

    Derivation: derivations/12_maximum_entropy.md, eq. (12.2)
    """
    v = _check_var(var)
    h = 0.5 * (LOG_2PI + 1.0 + np.log(v))
    return float(h) if h.ndim == 0 else h


def _mixture_params(var, separation):
    # Two equal-weight components at +-m with variance s2; total variance m^2 + s2 = var.
    m = separation * np.sqrt(var)
    s2 = var - m * m
    return m, s2


def log_density_at_variance(name, x, var=1.0, separation=0.9):
    """Log density of the zero-mean member of family ``name`` whose variance is ``var``.

    name: one of ``DISTRIBUTIONS``; x: array of any shape -> array of the same shape.
    Parameters matched to the variance: Laplace scale sqrt(var/2), uniform half-width
    sqrt(3 var), logistic scale sqrt(3 var)/pi, mixture 0.5 N(-m, s2) + 0.5 N(m, s2) with
    m = separation * sqrt(var) and s2 = var - m^2.

    Derivation: derivations/12_maximum_entropy.md, eq. (12.3)
    """
    _check_name(name)
    v = float(_check_var(var))
    sep = _check_separation(separation)
    x = np.asarray(x, dtype=np.float64)
    if name == "gaussian":
        return -0.5 * (LOG_2PI + np.log(v)) - 0.5 * x * x / v
    if name == "laplace":
        scale = np.sqrt(v / 2.0)
        return -np.log(2.0 * scale) - np.abs(x) / scale
    if name == "uniform":
        half = np.sqrt(3.0 * v)
        return np.where(np.abs(x) <= half, -np.log(2.0 * half), -np.inf)
    if name == "logistic":
        s = np.sqrt(3.0 * v) / np.pi
        u = np.abs(x) / s  # the density is symmetric; |u| keeps exp() from overflowing
        return -u - 2.0 * np.log1p(np.exp(-u)) - np.log(s)
    m, s2 = _mixture_params(v, sep)
    a = -0.5 * (LOG_2PI + np.log(s2)) - 0.5 * (x - m) ** 2 / s2
    bb = -0.5 * (LOG_2PI + np.log(s2)) - 0.5 * (x + m) ** 2 / s2
    return np.logaddexp(a, bb) - np.log(2.0)


def sample_at_variance(name, n, var=1.0, rng=None, separation=0.9):
    """Draw ``n`` samples (shape (n,)) from the zero-mean member of ``name`` with variance ``var``.

    rng: None, int seed or np.random.Generator.

    Derivation: derivations/12_maximum_entropy.md, eq. (12.3)
    """
    _check_name(name)
    n = positive_int("n", n)
    v = float(_check_var(var))
    sep = _check_separation(separation)
    g = _rng(rng)
    if name == "gaussian":
        return g.normal(0.0, np.sqrt(v), size=n)
    if name == "laplace":
        return g.laplace(0.0, np.sqrt(v / 2.0), size=n)
    if name == "uniform":
        half = np.sqrt(3.0 * v)
        return g.uniform(-half, half, size=n)
    if name == "logistic":
        return g.logistic(0.0, np.sqrt(3.0 * v) / np.pi, size=n)
    m, s2 = _mixture_params(v, sep)
    signs = np.where(g.random(n) < 0.5, -1.0, 1.0)
    return signs * m + g.normal(0.0, np.sqrt(s2), size=n)


def entropy_monte_carlo(name, var=1.0, n=200_000, rng=None, separation=0.9):
    """Monte Carlo entropy -mean log p(x_i), x_i ~ p, and its standard error.

    Returns (estimate, stderr), both floats, in nats.

    Derivation: derivations/12_maximum_entropy.md, eq. (12.3)
    """
    x = sample_at_variance(name, n, var, rng=rng, separation=separation)
    nlp = -log_density_at_variance(name, x, var, separation=separation)
    return float(nlp.mean()), float(nlp.std(ddof=1) / np.sqrt(n))


def entropies_at_variance(var=1.0, n_mc=200_000, seed=0, separation=0.9, return_stderr=False):
    """Entropies (nats) of five zero-mean densities that all have variance ``var``.

    Returns a dict name -> entropy, in the order of ``DISTRIBUTIONS``:
      gaussian  0.5 log(2 pi e var)
      laplace   1 + log(2 b),  b = sqrt(var / 2)
      uniform   log(2 a),      a = sqrt(3 var)
      logistic  log(s) + 2,    s = sqrt(3 var) / pi
      mixture   Monte Carlo with ``n_mc`` samples (seeded by ``seed``): no closed form.
    With ``return_stderr=True`` returns (entropies, stderrs) where the closed forms have
    stderr 0.0. The Gaussian is the largest (the maximum-entropy property).

    Derivation: derivations/12_maximum_entropy.md, eq. (12.2)
    Derivation: derivations/12_maximum_entropy.md, eq. (12.3)
    """
    v = float(_check_var(var))
    sep = _check_separation(separation)
    h = {
        "gaussian": gaussian_entropy(v),
        "laplace": 1.0 + float(np.log(2.0 * np.sqrt(v / 2.0))),
        "uniform": float(np.log(2.0 * np.sqrt(3.0 * v))),
        "logistic": float(np.log(np.sqrt(3.0 * v) / np.pi)) + 2.0,
    }
    se = {k: 0.0 for k in h}
    h["mixture"], se["mixture"] = entropy_monte_carlo(
        "mixture", v, n=n_mc, rng=np.random.default_rng(seed), separation=sep
    )
    return (h, se) if return_stderr else h
