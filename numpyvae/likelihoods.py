"""Decoder likelihoods p(x|z): log-density and its gradient w.r.t. the decoder's outputs.

Each ``*_log_prob`` sums over the last axis (pixels) and broadcasts x against the
decoder output, so x (B, D) against logits (K, B, D) gives (K, B). Each ``*_grad``
returns d log p / d output with the output's shape.
"""
from __future__ import annotations

import math

import numpy as np

from .kl import LOG_2PI, log_normal_diag
from .layers import _sigmoid

__all__ = ["bernoulli_log_prob", "bernoulli_log_prob_grad", "gaussian_log_prob",
           "gaussian_log_prob_grad", "gaussian_learned_log_prob",
           "gaussian_learned_log_prob_grad", "Bernoulli", "Gaussian", "GaussianLearned",
           "make_likelihood", "LIKELIHOODS"]

def bernoulli_log_prob(x, logits):
    """log Bernoulli(x; sigmoid(l)) = x l - softplus(l), summed over the last axis.

    Computed as x l - max(l, 0) - log1p(exp(-|l|)), which never overflows, with
    max(l, 0) = (l + |l|) / 2 so that |l| is computed once; x may be any value in [0, 1]
    (grey levels give the cross-entropy).

    Derivation: derivations/05_likelihoods.md, eq. (5.1)
    """
    a = np.abs(logits)
    return np.sum(x * logits - 0.5 * (logits + a) - np.log1p(np.exp(-a)), axis=-1)


def bernoulli_log_prob_grad(x, logits):
    """d/dl of ``bernoulli_log_prob``: x - sigmoid(l), shape of ``logits``.

    Derivation: derivations/05_likelihoods.md, eq. (5.2)
    """
    return x - _sigmoid(logits)


def _variance(c) -> float:
    # a Python float, never a NumPy float64 scalar: under NumPy 2 (NEP 50) a float64
    # scalar turns float32 arrays into float64, a Python float leaves their dtype alone
    try:
        v = float(c)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"c (the decoder variance) must be a positive number, got {c!r}")
    return v


def gaussian_log_prob(x, mean, c):
    """log N(x; mean, c I) = -||x - mean||^2 / (2c) - D/2 log(2 pi c).

    The constant keeps the value a true log-density (Shah's Eq. 9 drops it).

    Derivation: derivations/05_likelihoods.md, eq. (5.3)
    """
    c = _variance(c)
    d = x - mean
    D = np.shape(mean)[-1]
    return -0.5 * np.sum(d * d, axis=-1) / c - 0.5 * D * (LOG_2PI + math.log(c))


def gaussian_log_prob_grad(x, mean, c):
    """d/dmean of ``gaussian_log_prob``: (x - mean) / c.

    Derivation: derivations/05_likelihoods.md, eq. (5.4)
    """
    return (x - mean) / _variance(c)


def gaussian_learned_log_prob(x, mean, logvar):
    """log N(x; mean, diag exp(logvar)) = -1/2 sum(log 2pi + v + (x - m)^2 e^-v).

    The same formula as the encoder's log q(z|x), so it is that one function.

    Derivation: derivations/05_likelihoods.md, eq. (5.5)
    """
    return log_normal_diag(x, mean, logvar)


def gaussian_learned_log_prob_grad(x, mean, logvar):
    """Gradients (d/dmean, d/dlogvar) of ``gaussian_learned_log_prob``.

    d/dm = (x - m) e^-v;  d/dv = -1/2 + (x - m)^2 e^-v / 2.

    Derivation: derivations/05_likelihoods.md, eq. (5.6)
    """
    d = x - mean
    r = d * np.exp(-logvar)
    return r, 0.5 * (d * r - 1)


class Bernoulli:
    """p(x|z) = prod Bernoulli(x_d; sigmoid(l_d)); the decoder outputs logits l.

    Derivation: derivations/05_likelihoods.md, eq. (5.1)
    """
    name = "bernoulli"
    n_outputs = 1

    def log_prob(self, x, logits):
        return bernoulli_log_prob(x, logits)

    def grad(self, x, logits):
        return (bernoulli_log_prob_grad(x, logits),)

    def mean(self, logits):
        return _sigmoid(logits)


class Gaussian:
    """p(x|z) = N(x; f(z), c I) with a fixed variance c (Shah, Eq. 5).

    Derivation: derivations/05_likelihoods.md, eq. (5.3)
    """
    name = "gaussian"
    n_outputs = 1

    def __init__(self, c: float = 1.0):
        self.c = _variance(c)

    def log_prob(self, x, mean):
        return gaussian_log_prob(x, mean, self.c)

    def grad(self, x, mean):
        return (gaussian_log_prob_grad(x, mean, self.c),)

    def mean(self, mean):
        return mean


class GaussianLearned:
    """p(x|z) = N(x; m(z), diag exp(v(z))): the decoder outputs mean and log-variance.

    Derivation: derivations/05_likelihoods.md, eq. (5.5)
    """
    name = "gaussian_learned"
    n_outputs = 2

    def log_prob(self, x, mean, logvar):
        return gaussian_learned_log_prob(x, mean, logvar)

    def grad(self, x, mean, logvar):
        return gaussian_learned_log_prob_grad(x, mean, logvar)

    def mean(self, mean, logvar):
        return mean


LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_learned")


def make_likelihood(name: str, c: float = 1.0):
    """The likelihood object for ``name`` in ``LIKELIHOODS``.

    Derivation: derivations/05_likelihoods.md, eq. (5.1)
    """
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(c)
    if name == "gaussian_learned":
        return GaussianLearned()
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {name!r}")
