"""The numba loops behind ``fused``: each one pass over its arrays.

Every loop here is the plain NumPy expression it replaces written element by element, so one
read and one write of each array replaces the several passes (and temporaries) NumPy makes.
Sums over a few terms (samples, latent dimensions, rows of a batch) are accumulated in float64;
the sum over pixels runs in the arrays' dtype, reordered into vector lanes, as NumPy's own
pairwise sum is (``tests/test_fused.py`` bounds the difference).

This file is the source a reader reads; the training process does not import it. ``_aot.py``
compiles these functions, in a child process, into an extension module that ``fused.py`` loads
without numba; only when that build fails does ``fused.py`` import this module and let numba
compile the loops in process (``cache=True``: the compiled code is kept beside this file). Any
change here changes the compiled module's cache key, so it is rebuilt.
"""
from __future__ import annotations

import math

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
#: the same, free to reorder a sum (so its loop runs in vector registers, a partial sum a lane);
#: each term is still rounded as written
_jit_sum = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})


@_jit
def adam(theta, g, m, v, step, b1, b2, a1, a2, eps_t, tiny_m, tiny_v):
    """theta, g, m, v: 1-D; the scalars of the same dtype (so float32 stays float32 and the
    loop runs 16 lanes wide). m <- b1 m + a1 g;  v <- b2 v + a2 g^2;
    theta <- theta - step m / (sqrt(v) + eps_t), the bias corrections folded into the two
    scalars step = lr sqrt(c2) / c1 and eps_t = eps sqrt(c2) (``fused.adam_update`` says which
    c1, c2 and a1, a2). After the update, entries of m (of v) smaller than ``tiny_m``
    (``tiny_v``) in size are stored as 0, as the plain update flushes them (0: none)."""
    for i in range(theta.size):
        gi = g[i]
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * (gi * gi)
        theta[i] -= step * mi / (math.sqrt(vi) + eps_t)
        m[i] = mi if abs(mi) >= tiny_m else 0
        v[i] = vi if abs(vi) >= tiny_v else 0


@_jit_sum
def bernoulli(x, logits, e, sp, logp, grad, scale):
    """x: (B, D); logits, e, sp, grad: (K, B, D); logp: (K, B); e = exp(-|l|) and
    sp = log1p(e) come in (NumPy's vector exp and log1p are several times faster here than
    a compiled loop's scalar calls). logp[k, b] = sum_d x l - max(l, 0) - sp;
    grad = scale (x - sigmoid(l)) with sigmoid(l) = 1 / (1 + e) for l >= 0, e / (1 + e) below.
    ``grad`` must not be ``e``: with a store that may hit what it reads the loop runs one lane
    at a time (``fused.bernoulli_log_prob_and_grad`` gives it an array of its own). Constants are
    float32 so that float32 arrays are computed in float32 (in float64 they widen to float64)."""
    K, B, D = logits.shape
    zero, one = np.float32(0), np.float32(1)
    for k in range(K):
        for b in range(B):
            acc = zero
            for d in range(D):
                li = logits[k, b, d]
                xi = x[b, d]
                ei = e[k, b, d]
                acc += xi * li - max(li, zero) - sp[k, b, d]
                r = one / (one + ei)
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


@_jit_sum
def reparam_kl(mu, logvar, sigma, em1, eps, z, kl):
    """mu, logvar, sigma = exp(logvar / 2), em1 = expm1(logvar): (B, Z) (the two exps from
    NumPy's vector loops); eps, z: (K, B, Z); kl: (B,).
    z = mu + sigma eps; kl[b] = 1/2 sum_j mu^2 + em1 - logvar."""
    K, B, Z = eps.shape
    for b in range(B):
        acc = 0.0
        for j in range(Z):
            m = mu[b, j]
            s = sigma[b, j]
            for k in range(K):
                z[k, b, j] = m + s * eps[k, b, j]
            acc += m * m + (em1[b, j] - logvar[b, j])
        kl[b] = 0.5 * acc


@_jit
def reparam_kl_back(dz, mu, sigma, em1, eps, c, dmu, dlogvar):
    """dz, eps: (K, B, Z); mu, sigma = exp(logvar / 2), em1 = expm1(logvar), dmu, dlogvar: (B, Z).
    dmu = sum_k dz + c mu;  dlogvar = sigma / 2 sum_k dz eps + c em1 / 2."""
    K, B, Z = dz.shape
    for b in range(B):
        for j in range(Z):
            sm = 0.0
            se = 0.0
            for k in range(K):
                d = dz[k, b, j]
                sm += d
                se += d * eps[k, b, j]
            dmu[b, j] = sm + c * mu[b, j]
            dlogvar[b, j] = 0.5 * sigma[b, j] * se + c * (0.5 * em1[b, j])
