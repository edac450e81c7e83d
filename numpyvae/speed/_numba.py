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
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

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


# ------------------------------------------------ float32 exp, log1p and tanh as arithmetic
# A loop that calls the C library's expf or log1pf makes one call per element. Written as
# arithmetic (a range reduction, then a short polynomial), the compiler runs the same formula on
# 8 elements at once (AVX2), as NumPy's own vector code does where it has it (AVX-512 builds)
# and as XLA does everywhere. The polynomials are the float32 ones of the Cephes library (expf,
# logf, tanhf); each function is within one to three float32 epsilons of the exact value
# (``tests/test_fused.py`` checks against float64 on dense grids). The constants are float32
# globals, so float32 arithmetic stays float32: these helpers serve float32 arrays only.
# Each polynomial is summed in independent pairs of terms (Estrin's scheme: p0 + p1 r + (p2 + p3 r)
# r^2 + ...) rather than nested (Horner's), so the processor works on the pairs at once instead
# of waiting on one multiply-add after another: tanh 7% and the reparameterisation 10% faster, the
# Bernoulli term 2% (pairwise medians, compiled in process).
_F = np.float32
_ZERO, _HALF, _ONE, _TWO = _F(0), _F(0.5), _F(1), _F(2)
_LOG2E, _LN2_HI, _LN2_LO, _EXP_MIN = _F(1.44269504), _F(0.693359375), _F(-2.12194440e-4), _F(-80)
_EXP_MAX = _F(88)
_F127, _TWO23 = _F(127), _F(8388608)
_E1, _E2, _E3, _E4, _E5, _E6 = (_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                                 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_LN2, _SQRT2_M1, _TINY = _F(0.693147180559945), _F(0.414213562373095), _F(2.0 ** -25)
_L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8, _L9 = (_F(c) for c in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_T1, _T2, _T3, _T4, _T5 = (_F(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                            1.33314422036e-1, -3.33332819422e-1))
_TANH_SMALL = _F(0.625)


@_jit
def exp_f32(a):
    """exp(a) for float32 a, held to [exp(-80), exp(88)]: below, what the callers add it to
    cannot tell the difference, and from about exp(-87) on the results, or the products the
    callers make of them, are subnormal (which runs many times slower); above 88.7, float32
    overflows."""
    a = min(max(a, _EXP_MIN), _EXP_MAX)
    n, q = _exp_reduced(a)
    return (_ONE + q) * _pow2(n)


@_jit
def expm1_f32(a):
    """exp(a) - 1 for float32 a (held as ``exp_f32`` holds it), to float32's relative precision
    near 0 too: there n = 0 and exp(a) - 1 is the polynomial part q itself, no subtraction."""
    a = min(max(a, _EXP_MIN), _EXP_MAX)
    n, q = _exp_reduced(a)
    return q if n == _ZERO else (_ONE + q) * _pow2(n) - _ONE


@_jit
def _exp_reduced(a):
    """(n, q) with exp(a) = 2^n (1 + q): a = n ln2 + r, |r| <= ln2 / 2 (ln2 split in two, so
    that n ln2 is exact to float32), q = r + r^2 P(r), P of degree 5."""
    n = np.floor(a * _LOG2E + _HALF)
    r = (a - n * _LN2_HI) - n * _LN2_LO
    r2 = r * r
    p = ((_E1 * r + _E2) * r2 + (_E3 * r + _E4)) * r2 + (_E5 * r + _E6)
    return n, p * r2 + r


@_jit
def _pow2(n):
    """2^n for a whole float32 n in [-126, 127], written straight into a float's exponent bits."""
    return np.int32((n + _F127) * _TWO23).view(np.float32)


@_jit
def log1p_unit_f32(t):
    """log(1 + t) for float32 t in [0, 1]. 1 + t = 2^k (1 + f) with k = 0 and f = t (exact:
    small t keeps its relative precision) or, above sqrt(2) - 1, k = 1 and f = (t - 1) / 2;
    so -0.3 < f < 0.42, and log(1 + f) = f - f^2 / 2 + f^3 P(f), P of degree 8."""
    # below _TINY, log(1 + t) rounds to t itself, and f^2 would be subnormal (slow): f = 0 there
    big, tiny = t > _SQRT2_M1, t < _TINY
    f = (t - _ONE) * _HALF if big else (_ZERO if tiny else t)
    k = _LN2 if big else _ZERO
    z = f * f
    z2 = z * z
    p = (_L1 * z2 + ((_L2 * f + _L3) * z + (_L4 * f + _L5))) * z2 + ((_L6 * f + _L7) * z + (_L8 * f + _L9))
    return t if tiny else k + (f + (f * z * p - _HALF * z))


@_jit
def tanh_f32(y):
    """tanh(y) for float32 y: y + y^3 P(y^2), P of degree 4, below |y| = 0.625; above,
    (1 - e) / (1 + e) with e = exp(-2 |y|) (no cancellation there: e < 0.29), signed as y."""
    a = abs(y)
    z = y * y
    z2 = z * z
    small = ((_T1 * z2 + (_T2 * z + _T3)) * z2 + (_T4 * z + _T5)) * z * y + y
    e = exp_f32(-_TWO * a)
    q = (_ONE - e) / (_ONE + e)
    large = q if y >= _ZERO else -q
    return small if a < _TANH_SMALL else large


@_jit_sum
def bernoulli_out(x, logits, b, logp, grad, db, scale):
    """The decoder's output bias and the Bernoulli term in one pass, float32 arrays only.
    x: (B, D); logits, grad: (K, B, D); b, db: (D,); logp: (K, B).
    ``logits`` comes in as the product h W and leaves as l = h W + b;
    with e = exp(-|l|): logp[k, i] = sum_d x l - max(l, 0) - log1p(e);
    grad = scale (x - sigmoid(l)), sigmoid(l) = 1 / (1 + e) for l >= 0, e / (1 + e) below;
    db = the sum of grad over k and i, row after row (the order of NumPy's sum over axis 0).
    Each row goes through three short loops while it sits in the L1 cache: l and e (kept in
    ``grad`` until the third loop), the logarithms, the gradient. One loop doing all of it ran
    1.7 times slower (note 18, "The Bernoulli term")."""
    K, B, D = logits.shape
    for k in range(K):
        for i in range(B):
            acc = _ZERO
            for d in range(D):
                li = logits[k, i, d] + b[d]
                logits[k, i, d] = li
                acc += x[i, d] * li - max(li, _ZERO)
                grad[k, i, d] = exp_f32(-abs(li))
            for d in range(D):
                acc -= log1p_unit_f32(grad[k, i, d])
            logp[k, i] = acc
            for d in range(D):
                ei = grad[k, i, d]
                r = _ONE / (_ONE + ei)
                s = r if logits[k, i, d] >= _ZERO else ei * r
                grad[k, i, d] = scale * (x[i, d] - s)
    # the bias sum in a loop of its own: in the loops above, its stores (which the compiler
    # cannot prove miss the arrays read there) made them run at half speed
    for d in range(D):
        db[d] = _ZERO
    for k in range(K):
        for i in range(B):
            for d in range(D):
                db[d] += grad[k, i, d]


@_jit
def bias_tanh(y, b):
    """y: (B, H) float32, in place <- tanh(y + b). The bias first, row by row; then tanh over
    all B H entries as one flat loop. Row by row, every row ended in the vector loop's scalar
    remainder, where one tanh costs about as much as eight lanes; the flat loop has a single
    remainder and takes about a sixth less time on the tanh model's (100, 200) layers."""
    B, H = y.shape
    for i in range(B):
        for j in range(H):
            y[i, j] += b[j]
    flat = y.reshape(B * H)
    for i in range(B * H):
        flat[i] = tanh_f32(flat[i])


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
    z = mu + sigma eps; kl[b] = 1/2 sum_j mu^2 + em1 - logvar.
    Two loops: z over all B Z entries of a sample at once, then the KL row by row. With z's
    loop over the K samples inside the KL's, neither loop ran in vector lanes: 5 to 7 times
    slower at the tanh model's (100, 50)."""
    K, B, Z = eps.shape
    n = B * Z
    m, s = mu.reshape(n), sigma.reshape(n)
    for k in range(K):
        e, zk = eps[k].reshape(n), z[k].reshape(n)
        for i in range(n):
            zk[i] = m[i] + s[i] * e[i]
    for b in range(B):
        acc = 0.0
        for j in range(Z):
            mj = mu[b, j]
            acc += mj * mj + (em1[b, j] - logvar[b, j])
        kl[b] = 0.5 * acc


@_jit_sum
def reparam_kl_f32(mu, logvar, eps, z, kl, sigma, em1):
    """``reparam_kl`` for float32, with sigma = exp(logvar / 2) and em1 = expm1(logvar) made
    here (``exp_f32``, ``expm1_f32``) and written out for the backward to reuse.
    mu, logvar, sigma, em1: (B, Z); eps, z: (K, B, Z); kl: (B,)."""
    B, Z = mu.shape
    lv, s, e = logvar.reshape(B * Z), sigma.reshape(B * Z), em1.reshape(B * Z)
    for i in range(B * Z):      # on their own, over all B Z at once: a loop of vectors
        s[i] = exp_f32(_HALF * lv[i])
        e[i] = expm1_f32(lv[i])
    reparam_kl(mu, logvar, sigma, em1, eps, z, kl)


@_jit
def reparam_kl_back(dz, mu, sigma, em1, eps, c, dmu, dlogvar):
    """dz, eps: (K, B, Z); mu, sigma = exp(logvar / 2), em1 = expm1(logvar), dmu, dlogvar: (B, Z).
    dmu = sum_k dz + c mu;  dlogvar = sigma / 2 sum_k dz eps + c em1 / 2."""
    K, B, Z = dz.shape
    if K == 1:       # the usual case, as one flat loop in vector lanes: 2 to 5 times faster
        n = B * Z
        d, e = dz.reshape(n), eps.reshape(n)
        m, s, e1 = mu.reshape(n), sigma.reshape(n), em1.reshape(n)
        dm, dl = dmu.reshape(n), dlogvar.reshape(n)
        for i in range(n):
            dm[i] = d[i] + c * m[i]
            dl[i] = 0.5 * s[i] * (d[i] * e[i]) + c * (0.5 * e1[i])
        return
    for b in range(B):
        for j in range(Z):
            sm = 0.0
            se = 0.0
            for k in range(K):
                dk = dz[k, b, j]
                sm += dk
                se += dk * eps[k, b, j]
            dmu[b, j] = sm + c * mu[b, j]
            dlogvar[b, j] = 0.5 * sigma[b, j] * se + c * (0.5 * em1[b, j])


# ------------------------------------------- the whole float32 step, products included
# What is left of a fused step outside its products and loops is the interpreter: about forty
# NumPy calls and kernel calls a step, each a few microseconds, and slower still once the
# products have pushed the interpreter's own data out of the caches. Here the step of
# ``fused._Step`` is written once more as two compiled functions, forward and backward, that
# call the same BLAS routine NumPy's matmul calls (OpenBLAS's cblas_sgemm, found by
# ``fused._sgemm_address``) through its address: the same products, the same loops, no Python
# between them. ``step_forward`` and ``step_backward`` follow ``fused._Step``'s two methods.
@intrinsic
def _sgemm(typingctx, fn, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """cblas_sgemm(RowMajor, ta, tb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc) through the
    function at address ``fn`` (OpenBLAS built with 64-bit integers: m, n, k and the strides
    are int64, the two flags int32: 111 no transpose, 112 transpose)."""
    def codegen(context, builder, sig, args):
        fn_, ta_, tb_, m_, n_, k_, a_, lda_, b_, ldb_, beta_, c_, ldc_ = args
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        ptr = f32.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, ptr, i64, ptr,
                                               i64, f32, ptr, i64])
        call = builder.inttoptr(fn_, fnty.as_pointer())

        def data(ty, v):
            return builder.bitcast(context.make_array(ty)(context, builder, v).data, ptr)

        def flag(v):
            return builder.add(builder.trunc(v, i32), ir.Constant(i32, 111))
        builder.call(call, [ir.Constant(i32, 101), flag(ta_), flag(tb_), m_, n_, k_,
                            ir.Constant(f32, 1.0), data(sig.args[6], a_), lda_,
                            data(sig.args[8], b_), ldb_, beta_, data(sig.args[11], c_), ldc_])
        return context.get_dummy_value()
    return types.void(fn, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc), codegen


@_jit
def matmul(fn, a, ta, b, tb, c, beta):
    """c = op(a) op(b) + beta c for C-contiguous float32 2-D arrays; op transposes when its flag
    is 1; beta is 0 (c is overwritten) or 1 (added to). Refuses shapes that do not fit, before
    the BLAS routine, which would read past the arrays, is called."""
    m, k = (a.shape[1], a.shape[0]) if ta else (a.shape[0], a.shape[1])
    k2, n = (b.shape[1], b.shape[0]) if tb else (b.shape[0], b.shape[1])
    if k != k2 or c.shape[0] != m or c.shape[1] != n:
        raise ValueError("matmul: the arrays' shapes do not fit")
    _sgemm(fn, ta, tb, m, n, k, a, a.shape[1], b, b.shape[1], beta, c, c.shape[1])


@_jit
def _layer(p, table, i):
    """Layer i's W (d_in, d_out) and b (d_out,) as views of the flat buffer p; table row i is
    (offset of W, d_in, d_out, offset of b)."""
    w, d_in, d_out, o = table[i, 0], table[i, 1], table[i, 2], table[i, 3]
    return p[w:w + d_in * d_out].reshape(d_in, d_out), p[o:o + d_out]


@_jit
def _kept(hs, table, n_enc, B, N, i):
    """Trunk layer i's output, (rows, d_out), from the flat buffer hs: the encoder's layers have
    B rows, the decoder's N = K B, one after another in table order (the heads keep nothing)."""
    o = 0
    for j in range(i):
        if j < n_enc:
            o += B * table[j, 2]
        elif j > n_enc + 1:
            o += N * table[j, 2]
    rows = B if i < n_enc else N
    return hs[o:o + rows * table[i, 2]].reshape(rows, table[i, 2])


@_jit
def _check_table(table, n_enc):
    """At least one encoder and one decoder layer around the two heads, four numbers a row: the
    layer indices below then stay inside the table (numba does not check an index)."""
    if table.shape[1] != 4 or n_enc < 1 or n_enc + 4 > table.shape[0]:
        raise ValueError("step: the layer table does not describe an MLP VAE")


@_jit
def _bias_act(y, b, act):
    if act == 0:
        bias_relu(y, b)
    else:
        bias_tanh(y, b)


@_jit
def _trunk_layer(fn, p, table, n_enc, act, B, N, i, h, hs):
    """Trunk layer i forward, y = act(h W + b), written into its place in hs; returns y."""
    W, b = _layer(p, table, i)
    y = _kept(hs, table, n_enc, B, N, i)
    matmul(fn, h, 0, W, 0, y, _ZERO)
    _bias_act(y, b, act)
    return y


@_jit
def step_forward(fn, p, table, n_enc, act, x, eps, hs, mu, logvar, z, kl, sigma, em1, logits,
                 logp, dlogits, dlogits_b, scale):
    """``fused._Step.forward`` as one compiled call, float32. p: the model's flat parameters;
    table (L, 4): one row per linear layer (``_layer``), in the order encoder trunk (n_enc),
    mu head, logvar head, decoder trunk, output head; act: 0 ReLU, 1 tanh; x (B, D);
    eps, z (K, B, Z); hs: every trunk layer's output (``_kept``); mu, logvar, sigma, em1 (B, Z);
    kl (B,); logits, dlogits (K, B, D); logp (K, B); dlogits_b (D,); scale = -1 / (K B)."""
    _check_table(table, n_enc)
    B = x.shape[0]
    N = eps.shape[0] * B
    L = table.shape[0]
    h = x
    for i in range(n_enc):                            # h <- act(h W + b)
        h = _trunk_layer(fn, p, table, n_enc, act, B, N, i, h, hs)
    for i, out in ((n_enc, mu), (n_enc + 1, logvar)):
        W, b = _layer(p, table, i)
        matmul(fn, h, 0, W, 0, out, _ZERO)
        for r in range(B):
            for j in range(b.size):
                out[r, j] += b[j]
    reparam_kl_f32(mu, logvar, eps, z, kl, sigma, em1)   # z = mu + sigma eps and the KL (18.9)
    h = z.reshape(N, z.shape[2])
    for i in range(n_enc + 2, L - 1):
        h = _trunk_layer(fn, p, table, n_enc, act, B, N, i, h, hs)
    W, b = _layer(p, table, L - 1)                    # the logits; + b in the pass below (18.7)
    matmul(fn, h, 0, W, 0, logits.reshape(N, W.shape[1]), _ZERO)
    bernoulli_out(x, logits, b, logp, dlogits, dlogits_b, scale)


@_jit
def step_backward(fn, p, g, table, n_enc, act, first_grad, x, z, hs, eps, mu, sigma, em1,
                  dlogits, dlogits_b, c, dmu, dlogvar):
    """``fused._Step.backward`` as one compiled call, float32: the gradients into g, the flat
    buffer beside p, and into dmu, dlogvar (B, Z). The arguments are ``step_forward``'s and what
    it wrote; c = beta / B; first_grad: 1 when the first layer's input gradient is wanted."""
    _check_table(table, n_enc)
    B = x.shape[0]
    N = eps.shape[0] * B
    L = table.shape[0]
    rows = N * np.max(table[:, 1])                   # N = K B >= B: the longest d a layer takes
    down, pre = np.empty(rows, np.float32), np.empty(rows, np.float32)   # d and act' d, per layer
    W, b = _layer(p, table, L - 1)                    # the output head: dW = h^T d, db, d W^T
    dW, db = _layer(g, table, L - 1)
    d = dlogits.reshape(N, W.shape[1])
    h = _kept(hs, table, n_enc, B, N, L - 2) if L - 2 > n_enc + 1 else z.reshape(N, z.shape[2])
    matmul(fn, h, 1, d, 0, dW, _ZERO)
    db[:] = dlogits_b
    d_in = W.shape[0]
    d_next = down[:N * d_in].reshape(N, d_in)
    matmul(fn, d, 0, W, 1, d_next, _ZERO)
    d = d_next
    for i in range(L - 2, n_enc + 1, -1):             # the decoder trunk (18.8)
        d = _trunk_layer_back(fn, p, g, table, n_enc, act, B, N, i, z, x, hs, d, down, pre, 1)
    # z = mu + sigma eps and the KL, back to mu and logvar (18.9)
    reparam_kl_back(d.reshape(eps.shape), mu, sigma, em1, eps, c, dmu, dlogvar)
    H = table[n_enc, 1]
    h = _kept(hs, table, n_enc, B, N, n_enc - 1)
    d = down[:B * H].reshape(B, H)
    for i, dy in ((n_enc, dmu), (n_enc + 1, dlogvar)):   # the heads: dh = dmu Wmu^T + dlogvar Wlv^T
        W, b = _layer(p, table, i)
        dW, db = _layer(g, table, i)
        matmul(fn, h, 1, dy, 0, dW, _ZERO)
        db[:] = 0
        for r in range(B):
            for j in range(db.size):
                db[j] += dy[r, j]
        matmul(fn, dy, 0, W, 1, d, _ZERO if i == n_enc else _ONE)
    for i in range(n_enc - 1, -1, -1):                # the encoder trunk
        d = _trunk_layer_back(fn, p, g, table, n_enc, act, B, N, i, z, x, hs, d, down, pre,
                              1 if i > 0 else first_grad)


@_jit
def _trunk_layer_back(fn, p, g, table, n_enc, act, B, N, i, z, x, hs, d, down, pre, want_dx):
    """Back through trunk layer i, y = act(h W + b), given d = dL/dy: the activation's derivative
    and db in one pass, dW = h^T d', and (when want_dx) dL/dh = d' W^T, returned in ``down``."""
    W, b = _layer(p, table, i)
    dW, db = _layer(g, table, i)
    d_in, d_out = W.shape
    rows = d.shape[0]
    y = _kept(hs, table, n_enc, B, N, i)
    dpre = pre[:rows * d_out].reshape(rows, d_out)
    if act == 0:
        relu_back(d, y, dpre, db)
    else:
        tanh_back(d, y, dpre, db)
    if i == 0:
        h = x
    elif i == n_enc + 2:
        h = z.reshape(N, z.shape[2])
    else:
        h = _kept(hs, table, n_enc, B, N, i - 1)
    matmul(fn, h, 1, dpre, 0, dW, _ZERO)
    d_next = down[:rows * d_in].reshape(rows, d_in)
    if want_dx:
        matmul(fn, dpre, 0, W, 1, d_next, _ZERO)
    return d_next
