"""The importance-weighted bound from log weights: one log-mean-exp and its gradient.

Every K-sample average of weights in numpyvae, the IWAE objective of a model (note 10) and the
importance-sampled log p(x) of an evaluation (note 08), goes through ``log_mean_exp``.
Shapes: log weights ``(K, B)``, K samples for each of B examples; bounds ``(B,)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["log_mean_exp", "iwae_bound", "iwae_bound_backward"]


def log_mean_exp(a, axis=0, keepdims=False):
    """log(mean(exp(a), axis)) without overflow or underflow.

    Shifts by the maximum m along ``axis``: m + log(mean(exp(a - m))). Entries equal to
    -inf contribute 0 to the mean; a slice that is all -inf gives -inf (the shift would be
    -inf - (-inf)); +inf gives +inf. a: any shape -> a with ``axis`` removed (kept with size 1
    if ``keepdims``).

    Derivation: derivations/08_importance_sampling.md, eq. (8.4)
    """
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    if a.size == 0 or (axis is not None and a.shape[axis] == 0):
        raise ValueError(f"a must have at least one entry along axis {axis}, got shape {a.shape}")
    m = np.max(a, axis=axis, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)     # a non-finite max: shift by 0 instead
    with np.errstate(divide="ignore"):
        out = np.log(np.mean(np.exp(a - m_safe), axis=axis, keepdims=True)) + m_safe
    return out if keepdims else np.squeeze(out, axis=axis)


def iwae_bound(log_w):
    """The K-sample bound per example, L_K = log (1/K) sum_k exp(log w_k), computed stably.

    log_w: (K, B) log importance weights -> (B,); -inf where every weight is 0.

    Derivation: derivations/10_model_family.md, eq. (10.1)
    Derivation: derivations/08_importance_sampling.md, eq. (8.5)
    """
    return log_mean_exp(log_w, axis=0)


def iwae_bound_backward(dbound, log_w):
    """Carry dL/dL_K (B,) back to dL/dlog_w (K, B) through ``iwae_bound``.

    The derivative of a log-mean-exp is the softmax over k, the normalized weights w~_k.
    A weight below eps^2 (the dtype's machine epsilon squared) of the largest is set to zero:
    it cannot change a float sum of K terms, and in float32 many such weights are subnormal
    numbers, which made every product they entered slower (an IWAE step 3x, note 10).

    Derivation: derivations/10_model_family.md, eq. (10.2)
    """
    w = np.exp(log_w - log_w.max(axis=0))         # shifted: the same softmax, no overflow
    w[w < np.finfo(w.dtype).eps ** 2] = 0
    w_tilde = w / w.sum(axis=0)
    return dbound * w_tilde
