"""The numba loops behind ``fused``: each one pass over its arrays, compiled on first use.

Every loop here is the plain NumPy expression it replaces written element by element, so one
read and one write of each array replaces the several passes (and temporaries) NumPy makes.
Sums are accumulated in float64 whatever the arrays' dtype: the fused result is then at least as
accurate as NumPy's float32 sum (``tests/test_fused.py`` bounds the difference).

Nothing here is imported unless numba is installed: ``fused.py`` imports this module inside a
``try`` and falls back to the plain path when the import or a compilation fails.
"""
from __future__ import annotations

import math

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def adam(theta, g, m, v, lr, b1, b2, a1, a2, eps, c1, c2, tiny_m, tiny_v):
    """theta, g, m, v: 1-D, same dtype. m <- b1 m + a1 g; v <- b2 v + a2 g^2;
    theta <- theta - lr (m / c1) / (sqrt(v / c2) + eps). Kingma & Ba's moments: a1 = 1 - b1,
    c1 = 1 - b1^t (likewise for v); weighted sums of the gradients: a1 = 1, c1 = the sum of
    the weights (1 - b1^t) / (1 - b1). After the update, entries of m (of v) smaller than
    ``tiny_m`` (``tiny_v``) in size are stored as 0, as the plain update flushes them (0: none)."""
    for i in range(theta.size):
        gi = g[i]
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * (gi * gi)
        theta[i] -= lr * (mi / c1) / (math.sqrt(vi / c2) + eps)
        m[i] = mi if abs(mi) >= tiny_m else 0
        v[i] = vi if abs(vi) >= tiny_v else 0


@_jit
def bernoulli(x, logits, e, sp, logp, grad, scale):
    """x: (B, D); logits, e, sp, grad: (K, B, D); logp: (K, B); e = exp(-|l|) and
    sp = log1p(e) come in (NumPy's vector exp and log1p are several times faster here than
    a compiled loop's scalar calls). logp[k, b] = sum_d x l - max(l, 0) - sp;
    grad = scale (x - sigmoid(l)) with sigmoid(l) = 1 / (1 + e) for l >= 0, e / (1 + e) below."""
    K, B, D = logits.shape
    for k in range(K):
        for b in range(B):
            acc = 0.0
            for d in range(D):
                li = logits[k, b, d]
                xi = x[b, d]
                ei = e[k, b, d]
                pos = li if li > 0 else 0
                acc += xi * li - pos - sp[k, b, d]
                r = 1 / (1 + ei)
                s = r if li >= 0 else ei * r
                grad[k, b, d] = scale * (xi - s)
            logp[k, b] = acc


@_jit
def bias_relu(y, b):
    """y: (B, H) in place <- max(y + b, 0)."""
    B, H = y.shape
    for i in range(B):
        for j in range(H):
            t = y[i, j] + b[j]
            y[i, j] = t if t > 0 else 0


@_jit
def relu_back(dy, y, dx, db):
    """dx = dy [y > 0] (B, H); db (H,) = sum over rows of dx."""
    B, H = dy.shape
    acc = np.zeros(H)
    for i in range(B):
        for j in range(H):
            t = dy[i, j] if y[i, j] > 0 else 0
            dx[i, j] = t
            acc[j] += t
    for j in range(H):
        db[j] = acc[j]


@_jit
def tanh_back(dy, y, dx, db):
    """dx = dy (1 - y^2) (B, H); db (H,) = sum over rows of dx."""
    B, H = dy.shape
    acc = np.zeros(H)
    for i in range(B):
        for j in range(H):
            yi = y[i, j]
            t = dy[i, j] * (1 - yi * yi)
            dx[i, j] = t
            acc[j] += t
    for j in range(H):
        db[j] = acc[j]


@_jit
def reparam_kl(mu, logvar, eps, z, kl):
    """mu, logvar: (B, Z); eps, z: (K, B, Z); kl: (B,).
    z = mu + exp(logvar / 2) eps; kl[b] = 1/2 sum_j mu^2 + expm1(logvar) - logvar."""
    K, B, Z = eps.shape
    for b in range(B):
        acc = 0.0
        for j in range(Z):
            m = mu[b, j]
            lv = logvar[b, j]
            s = math.exp(0.5 * lv)
            for k in range(K):
                z[k, b, j] = m + s * eps[k, b, j]
            acc += m * m + (math.expm1(lv) - lv)
        kl[b] = 0.5 * acc


@_jit
def reparam_kl_back(dz, mu, logvar, eps, c, dmu, dlogvar):
    """dz, eps: (K, B, Z); mu, logvar, dmu, dlogvar: (B, Z).
    dmu = sum_k dz + c mu;  dlogvar = sigma / 2 sum_k dz eps + c expm1(logvar) / 2."""
    K, B, Z = dz.shape
    for b in range(B):
        for j in range(Z):
            lv = logvar[b, j]
            sm = 0.0
            se = 0.0
            for k in range(K):
                d = dz[k, b, j]
                sm += d
                se += d * eps[k, b, j]
            dmu[b, j] = sm + c * mu[b, j]
            dlogvar[b, j] = 0.5 * math.exp(0.5 * lv) * se + c * (0.5 * math.expm1(lv))
