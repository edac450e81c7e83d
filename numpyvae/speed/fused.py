"""Fused kernels for the elementwise parts of a training step (optional: ``pip install -e ".[fast]"``).

A NumPy expression such as ``x * l - 0.5 * (l + a) - np.log1p(np.exp(-a))`` makes one pass over
memory, and one temporary, per operator. On the step's (B, 784) arrays each pass costs more in
call overhead and memory traffic than in arithmetic. Each function here computes the same
numbers as the plain functions of the core in one compiled loop (numba), reading and writing
each array once. The core keeps the readable forms; these are their fused twins, tested equal
to them to the dtype's rounding (``tests/test_fused.py``).

The loops are written in ``_numba.py``. They are not compiled in the training process: importing
numba there would cost about 130 MB of memory, more than the plain step uses. ``_aot.py`` compiles
them ahead of time, once per machine, in a child process, into an extension module kept in
``$NUMPYVAE_CACHE_DIR`` (else ``~/.cache/numpyvae``), and this module imports that file alone.
If that build cannot be done (no C compiler, numba without ``numba.pycc``), numba compiles the
loops in this process instead and one line says so.

When numba is not installed, or the kernels fail to compile both ways, every function here runs
the plain NumPy path instead and one line says so (once); the numbers are then exactly the core's. Inputs
the kernels do not take (mixed dtypes, non-contiguous arrays, integer data) go the plain way
too, silently: that is a routing rule, not a failure.

A loop that calls the C library's exp, log1p or tanh makes one scalar call an element. So for
float32 the kernels compute these three themselves, as a range reduction and a short polynomial
that the compiler runs eight lanes wide (``_numba.py``, note 18, eq. (18.10)). NumPy's own
ran as vector code on an AVX-512 machine, but on an AVX2 one at the cost of a scalar call an
element (note 18 has the measurements). For float64
the Bernoulli kernel takes exp(-|l|) and its log1p from NumPy, and tanh's forward is NumPy's
tanh applied in place.

A float32 model's step runs as two compiled calls, forward and backward (``_CompiledStep``),
which make the products through the BLAS routine NumPy's own matmul calls (OpenBLAS's
``cblas_sgemm``, by its address) and the kernels in between with no Python among them: the same
numbers as the step that calls each kernel from Python (``_Step``), which runs for float64 and
wherever NumPy's BLAS cannot be called that way.

Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
"""
from __future__ import annotations

import importlib.util
import sys
import threading
import time

import numpy as np

from .. import optim
from .adam import BlockedAdam
from ..kl import kl_normal_std, kl_normal_std_grad
from ..likelihoods import bernoulli_log_prob, bernoulli_log_prob_grad
from ..model import VAE, Terms
from ..reparam import reparameterize, reparameterize_backward

__all__ = ["available", "warm_up", "adam_update", "bernoulli_log_prob_and_grad", "bernoulli_output",
           "bias_act_forward", "act_bias_backward", "reparameterize_kl",
           "reparameterize_kl_backward", "FusedAdam", "fits", "attach", "fused_forward",
           "fused_backward", "attached", "detach"]

_FLOATS = (np.float32, np.float64)
#: the loaded kernel module, False when switched off, None before the first attempt
_kernels = None
#: why the kernels are off ("" while on), and seconds the last load took (import + compile)
reason = ""
load_seconds = 0.0
#: where the kernels came from: "cache" or "built" (the module compiled ahead of time, loaded
#: from the cache or built now), "in process" (numba's own compiler, in this process), "" (off)
source = ""


def _say(msg):
    print(f"numpyvae: {msg}", file=sys.stderr, flush=True)


def _switch_off(why):
    global _kernels, reason, source
    _kernels, reason, source = False, why, ""
    _say(f"{why}; the fused kernels are off and the plain NumPy path runs (same numbers)")


def _warm(k):
    """Run every kernel once on tiny float32 and float64 arrays: a kernel that cannot run (or,
    in process, compile) fails here and not in a step. Scalars are typed as the callers type
    them, so the in-process compiler makes only the versions a step uses."""
    for dt in _FLOATS:
        a = np.ones(4, dt)
        k.adam(a.copy(), a, a.copy(), a.copy(), *(dt(c) for c in (1e-3, 0.9, 0.999, 0.1, 0.001, 1e-8, 0, 0)))
        x2, l3 = np.ones((2, 2), dt), np.ones((1, 2, 2), dt)
        k.bernoulli(x2, l3, l3.copy(), l3.copy(), np.empty((1, 2), dt), np.empty_like(l3), dt(1.0))
        k.bias_relu(x2.copy(), a[:2].copy())
        if dt is np.float32:                      # built on _numba's float32 exp, log1p, tanh
            k.bernoulli_out(x2, l3.copy(), a[:2], np.empty((1, 2), dt), np.empty_like(l3),
                            np.empty(2, dt), dt(1.0))
            k.bias_tanh(x2.copy(), a[:2].copy())
            k.reparam_kl_f32(x2, x2, l3, np.empty_like(l3), np.empty(2, dt), np.empty_like(x2),
                             np.empty_like(x2))
        k.relu_back(x2, x2, np.empty_like(x2), np.empty(2, dt))
        k.tanh_back(x2, x2, np.empty_like(x2), np.empty(2, dt))
        k.reparam_kl(x2, x2, x2, x2, l3, np.empty_like(l3), np.empty(2, dt))
        k.reparam_kl_back(l3, x2, x2, x2, l3, 1.0, np.empty_like(x2), np.empty_like(x2))


def _first_line(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0]}" if str(e) else type(e).__name__


def _load_in_process():
    """numba's just-in-time kernels (``_numba.py``), compiled in this process."""
    from . import _numba
    _warm(_numba)
    return _numba


def _load():
    """The kernels, or None (switched off, with one message the first time).

    First the module compiled ahead of time (``_aot.py``: from the cache, or built now in a child
    process), which keeps numba out of this process; if that cannot be had, numba's kernels
    compiled in this process; if those fail too, none.
    """
    global _kernels, reason, load_seconds, source
    if _kernels is not None:
        return _kernels or None
    t0 = time.perf_counter()
    if importlib.util.find_spec("numba") is None:
        _switch_off("numba is not installed (no module named 'numba'); "
                    "pip install -e \".[fast]\" to get it")
        return None
    try:
        from . import _aot
        kernels, built = _aot.load()
        _warm(kernels)
        source = "built" if built else "cache"
    except Exception as e:               # no pycc, no C compiler, a failed build: compile here
        aot_failed = _first_line(e)
        try:
            kernels = _load_in_process()
        except ImportError as e2:
            _switch_off(f"numba could not be imported ({_first_line(e2)})")
            return None
        except Exception as e2:
            _switch_off(f"numba could not compile the fused kernels ({_first_line(e2)}; "
                        f"ahead of time: {aot_failed})")
            return None
        _say(f"the fused kernels were compiled in this process (numba loaded, about 130 MB), "
             f"as the ahead-of-time build failed: {aot_failed}")
        source = "in process"
    _warm_step(kernels)
    _kernels, reason, load_seconds = kernels, "", time.perf_counter() - t0
    return _kernels


def available() -> bool:
    """True when the fused kernels are on (numba installed and every kernel compiled).

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
    """
    return _load() is not None


def warm_up() -> float:
    """Load (and compile, the first time) every kernel now; the seconds that took (0 when they
    are off).

    The compiled module is kept in a cache folder (``$NUMPYVAE_CACHE_DIR``, else
    ``~/.cache/numpyvae``), so a second process only imports it: milliseconds.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
    """
    return load_seconds if _load() is not None else 0.0


def _ok(*arrays):
    """The kernels take C-contiguous float32/float64 arrays of one dtype."""
    dt = arrays[0].dtype
    return (dt in _FLOATS and all(isinstance(a, np.ndarray) and a.dtype == dt
                                  and a.flags.c_contiguous for a in arrays))


def _call(name, *args):
    """Run kernel ``name``; False (and the kernels switched off) if it refuses these arguments
    (the compiled module checks them, the in-process compiler types them, before the loop runs,
    so no array is half written)."""
    k = _load()
    if k is None:
        return False
    try:
        getattr(k, name)(*args)
    except Exception as e:
        _switch_off(f"the fused kernel {name} failed ({_first_line(e)})")
        return False
    return True


# -------------------------------------------------------------------------------- Adam
def _adam_kernel(theta, g, m, v, lr, b1, b2, a1, a2, eps, c1, c2, tiny_m, tiny_v):
    """The kernel with the bias corrections folded into two scalars (exact algebra:
    lr (m / c1) / (sqrt(v / c2) + eps) = (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2))),
    every scalar in the arrays' dtype."""
    dt = theta.dtype.type
    r2 = c2 ** 0.5
    return _call("adam", theta, g, m, v, dt(lr * r2 / c1), dt(b1), dt(b2), dt(a1), dt(a2),
                 dt(eps * r2), dt(tiny_m), dt(tiny_v))


def adam_update(theta, g, m, v, *, lr, b1, b2, eps, t, flush_m=0.0, flush_v=0.0):
    """Kingma & Ba's Adam step on flat arrays, in place, one pass over theta, g, m and v.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    After the step, entries of m (v) smaller in size than ``flush_m`` (``flush_v``) are set to
    zero, as ``numpyvae.optim`` flushes decaying moments (0: nothing flushed). The plain path
    is these formulas as NumPy expressions. Eight passes of NumPy become one: 28 bytes a
    float32 parameter instead of about 100.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.6)
    """
    if theta.ndim == 1 and _ok(theta, g, m, v) and _adam_kernel(
            theta, g, m, v, lr, b1, b2, 1 - b1, 1 - b2, eps, 1 - b1 ** t, 1 - b2 ** t, flush_m, flush_v):
        return
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    theta -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    if flush_m:
        m[np.abs(m) < flush_m] = 0
    if flush_v:
        v[np.abs(v) < flush_v] = 0


# --------------------------------------------------------------------------- Bernoulli
_scratch_bufs = threading.local()      # work arrays per thread: a thread split runs two steps at once


def _scratch(name, shape, dtype):
    """Work array ``name``, reused from call to call (never returned): a fresh 400 kB array
    each step costs page faults that can outweigh the pass that fills it."""
    key = (shape, np.dtype(dtype))
    held = getattr(_scratch_bufs, name, None)
    if held is None or held[0] != key:     # one shape at a time: the training shape
        held = (key, np.empty(shape, dtype))
        setattr(_scratch_bufs, name, held)
    return held[1]


def bernoulli_log_prob_and_grad(x, logits, scale=1.0):
    """(log p(x|z), scale * d log p / d logits) of the Bernoulli likelihood, in one pass.

    x: (B, D); logits: (K, B, D) or (B, D) -> log p: (K, B) or (B,), and the gradient with the
    shape of logits. Equal to ``bernoulli_log_prob(x, logits)`` and ``scale *
    bernoulli_log_prob_grad(x, logits)`` (note 05, eqs. (5.1), (5.2)) to rounding.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.7)
    """
    if logits.ndim in (2, 3) and x.ndim == 2 and logits.shape[-2:] == x.shape and _ok(logits, x):
        l3 = logits if logits.ndim == 3 else logits[None]
        e = _scratch("e", l3.shape, l3.dtype)  # e = exp(-|l|), sp = log1p(e): NumPy's vector loops
        np.abs(l3, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)
        sp = _scratch("sp", l3.shape, l3.dtype)
        np.log1p(e, out=sp)
        logp = np.empty(l3.shape[:2], dtype=l3.dtype)
        # a gradient array of its own: written over e, the compiled loop could not prove that
        # its stores miss the arrays it reads and ran one lane at a time (5x slower)
        grad = np.empty_like(l3)
        if _call("bernoulli", x, l3, e, sp, logp, grad, l3.dtype.type(scale)):
            return (logp, grad) if logits.ndim == 3 else (logp[0], grad[0])
    grad = bernoulli_log_prob_grad(x, logits)
    if scale != 1.0:
        grad *= scale
    return bernoulli_log_prob(x, logits), grad


def bernoulli_output(x, hw, b, scale=1.0):
    """The decoder's output bias and the Bernoulli term with its gradient, in one pass.

    x: (B, D); hw: (K, B, D), the product h W of the output layer, which becomes the logits
    l = h W + b in place; b: (D,). Returns (log p(x|z) (K, B), g = scale * d log p / d l
    (K, B, D), the bias's gradient sum_{k,i} g (D,)). Equal to ``bernoulli_log_prob(x, l)``,
    ``scale * bernoulli_log_prob_grad(x, l)`` (note 05, eqs. (5.1), (5.2)) and that gradient's
    column sum to rounding. For float32 the kernel computes exp(-|l|) and log1p of it itself,
    as arithmetic the compiler runs eight lanes wide (no C library call an element); float64
    takes ``bernoulli_log_prob_and_grad``.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.7)
    """
    if (hw.ndim == 3 and x.ndim == 2 and hw.shape[1:] == x.shape and b.shape == x.shape[1:]
            and hw.dtype == np.float32 and _ok(x, hw, b)):
        K, B, D = hw.shape
        logp, grad, db = np.empty((K, B), hw.dtype), np.empty_like(hw), np.empty(D, hw.dtype)
        if _call("bernoulli_out", x, hw, b, logp, grad, db, np.float32(scale)):
            return logp, grad, db
    hw += b
    logp, grad = bernoulli_log_prob_and_grad(x, hw, scale)
    return logp, grad, grad.sum(axis=tuple(range(grad.ndim - 1)))


# ------------------------------------------------------------------ bias and activation
def bias_act_forward(y, b, activation):
    """y <- act(y + b) in place (y: (B, H) the product x W; b: (H,)); returns y.

    The bias add and the activation in one pass: for tanh in float32, with the kernels' own
    tanh written as arithmetic (a compiled loop calling the C library's tanhf, one element at
    a time, is slower than NumPy); for tanh in float64, NumPy's tanh in place after the add.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.8)
    """
    if activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
    if y.ndim == 2 and _ok(y, b) and (activation == "relu" or y.dtype == np.float32) and _call(
            "bias_relu" if activation == "relu" else "bias_tanh", y, b):
        return y
    y += b
    if activation == "relu":
        np.maximum(y, 0, out=y)
    else:
        np.tanh(y, out=y)
    return y


def act_bias_backward(dy, y, activation):
    """(dx, db) through y = act(x W + b): dx = dy act'(.) (B, H), db = sum over rows of dx.

    act' is read from the output y: [y > 0] for ReLU, 1 - y^2 for tanh (note 06, eqs. (6.2),
    (6.4)); the bias gradient is summed in the same pass, in float64.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.8)
    """
    if activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
    if dy.ndim == 2 and dy.shape == y.shape and _ok(dy, y):
        dx, db = np.empty_like(dy), np.empty(dy.shape[1], dy.dtype)
        if _call("relu_back" if activation == "relu" else "tanh_back", dy, y, dx, db):
            return dx, db
    dx = dy * (y > 0) if activation == "relu" else dy * (1 - y * y)
    return dx, dx.sum(axis=0)


# ------------------------------------------------------------ reparameterization and KL
def reparameterize_kl(mu, logvar, eps):
    """(z, KL): z = mu + exp(logvar / 2) eps (K, B, Z) and the closed-form KL to N(0, I) (B,).

    Equal to ``reparameterize(mu, logvar, eps)`` and ``kl_normal_std(mu, logvar)``
    (note 04, eq. (4.1); note 02, eq. (2.3)) to rounding, in one pass over (mu, logvar).

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.9)
    """
    z, kl, _, _ = _reparameterize_kl(mu, logvar, eps)
    return z, kl


def _reparameterize_kl(mu, logvar, eps):
    """``reparameterize_kl`` plus sigma = exp(logvar / 2) and em1 = expm1(logvar) (B, Z), which
    the backward needs too (None, None on the plain path). For float32 the kernel makes both
    itself; for float64 they come from NumPy."""
    if (mu.ndim == 2 and eps.ndim == 3 and mu.shape == logvar.shape == eps.shape[1:]
            and _ok(mu, logvar, eps)):
        z, kl = np.empty_like(eps), np.empty(mu.shape[0], mu.dtype)
        sigma, em1 = np.empty_like(mu), np.empty_like(mu)
        if mu.dtype == np.float32 and _call("reparam_kl_f32", mu, logvar, eps, z, kl, sigma, em1):
            return z, kl, sigma, em1
        sigma, em1 = np.exp(0.5 * logvar), np.expm1(logvar)
        if _call("reparam_kl", mu, logvar, sigma, em1, eps, z, kl):
            return z, kl, sigma, em1
    return reparameterize(mu, logvar, eps), kl_normal_std(mu, logvar), None, None


def reparameterize_kl_backward(dz, mu, logvar, eps, c, sigma=None, em1=None):
    """(dmu, dlogvar) of  loss(z) + c KL(mu, logvar)  with z = mu + sigma eps, eps held fixed.

    dmu = sum_k dz_k + c mu;  dlogvar = sigma / 2 sum_k dz_k eps_k + c (exp(logvar) - 1) / 2:
    ``reparameterize_backward`` plus c times ``kl_normal_std_grad`` (note 04, eq. (4.2);
    note 02, eq. (2.4)), the model's steps 3 and 4 of note 07 with c = beta / B. ``sigma``
    = exp(logvar / 2) and ``em1`` = expm1(logvar), when the forward made them, are not made again.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.9)
    """
    if (dz.ndim == 3 and dz.shape == eps.shape and mu.shape == logvar.shape == eps.shape[1:]
            and _ok(dz, mu, logvar, eps)):
        dmu, dlogvar = np.empty_like(mu), np.empty_like(mu)
        if sigma is None or em1 is None:
            sigma, em1 = np.exp(0.5 * logvar), np.expm1(logvar)
        if _call("reparam_kl_back", dz, mu, sigma, em1, eps, float(c), dmu, dlogvar):
            return dmu, dlogvar
    dmu, dlogvar = reparameterize_backward(dz, logvar, eps)
    dmu_kl, dlogvar_kl = kl_normal_std_grad(mu, logvar)
    dmu += c * dmu_kl
    dlogvar += c * dlogvar_kl
    return dmu, dlogvar


# ------------------------------------------------------------------------ the optimizer
class FusedAdam(BlockedAdam):
    """``numpyvae.optim.Adam`` whose update is the one-pass kernel of ``adam_update``.

    The same state (m, v, t: checkpoints and ``state_dict`` are unchanged), the same weight
    decay and flushing of decayed moments; ``BlockedAdam``'s update runs instead when the
    kernels are off, when a split step hands it a thread pool, or when the buffer is not a
    contiguous float array. ``FusedAdam.like(opt)`` copies an Adam's settings and state.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.6)
    """

    def step(self, params, grads):
        """One Adam update of ``params`` in place from ``grads``, in one pass when fused."""
        if not (params.ndim == 1 and _ok(params, grads) and self.pool is None and available()):
            return super().step(params, grads)
        g = np.ascontiguousarray(self._grad(params, grads))
        m = self._state(params.shape, params.dtype, "m")
        v = self._state(params.shape, params.dtype, "v")
        b1, b2, t = self.b1, self.b2, self.t + 1
        tiny_m = tiny_v = 0.0
        if t % min(optim._flush_period(b1), optim._flush_period(b2)) == 0:
            tiny_m = optim._tiny(m.dtype)
            tiny_v = tiny_m if self.eps > 0 else 0.0
        if not _ok(g, m, v) or not _adam_kernel(params, g, m, v, self.lr, b1, b2, 1 - b1, 1 - b2,
                                                 self.eps, 1 - b1 ** t, 1 - b2 ** t, tiny_m, tiny_v):
            return super().step(params, grads)       # nothing was written: the blocked update
        self.t = t

    def update_blocked(self, theta, g, m, v, key=0):
        """The update of step ``self.t`` on a piece of the buffer (the split step gives each
        process its half), in one pass when fused; moments are flushed by the caller."""
        b1, b2, t = self.b1, self.b2, self.t
        if not (_ok(theta, g, m, v) and available() and _adam_kernel(
                theta, g, m, v, self.lr, b1, b2, 1 - b1, 1 - b2, self.eps, 1 - b1 ** t, 1 - b2 ** t, 0, 0)):
            super().update_blocked(theta, g, m, v, key)


# ---------------------------------------------------------------- the model's step
def fits(vae) -> bool:
    """True when ``fused_forward`` can run ``vae``'s step: the plain ``numpyvae.model.VAE``
    (not a subclass) with the Bernoulli likelihood, ReLU or tanh, a hidden trunk, float32/64.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
    """
    return (type(vae) is VAE and vae.likelihood_name == "bernoulli"
            and vae.activation in ("relu", "tanh") and len(vae.hidden) > 0
            and np.dtype(vae.dtype) in _FLOATS)


class _Step:
    """One model's fused step, with what a call would look up found once, when it is made.

    A kernel here runs for 5-250 microseconds, and the public functions above wrap each call in
    a few microseconds of Python (do the arrays fit a kernel, which kernel, what if it refuses).
    A step makes about twenty calls. Here the arrays are the step's own, made in the model's
    dtype, so they fit by construction and go straight to the kernel: on a model so small that
    products and kernels cost nothing (8-4-4-2, B = 2), a whole step fell from 227 to 175
    microseconds (docs/benchmarks.md). Float32 runs every kernel; float64 takes the public functions above, which
    route as they always do (there is no float64 tanh, exp or log1p kernel).
    """

    def __init__(self, vae, kernels):
        self.vae, self.k = vae, kernels
        self.f32 = np.dtype(vae.dtype) == np.float32
        relu = vae.activation == "relu"
        self.act_back = kernels.relu_back if relu else kernels.tanh_back
        if relu or self.f32:
            self.act = kernels.bias_relu if relu else kernels.bias_tanh
        else:
            self.act = lambda y, b: bias_act_forward(y, b, "tanh")

    def forward(self, x, eps, beta):
        """Terms of the step on x (B, D) and eps (K, B, Z), both C-contiguous in the model's
        dtype; leaves the cache ``backward`` reads in ``vae._cache``."""
        vae, k, act = self.vae, self.k, self.act
        K, B, Z = eps.shape
        dt = x.dtype
        h = x
        enc_h = []
        for lin in vae.enc.linears:                  # h <- act(h W + b), one pass after the product
            lin.x = h                                # what the backward's dW reads
            h = h @ lin.W
            act(h, lin.b)
            enc_h.append(h)
        head_mu, head_logvar = vae.enc_mu, vae.enc_logvar
        head_mu.x = head_logvar.x = h
        mu = h @ head_mu.W
        mu += head_mu.b
        logvar = h @ head_logvar.W
        logvar += head_logvar.b
        if self.f32:                                 # z = mu + sigma eps and the KL (18.9)
            z, kl_pe = np.empty_like(eps), np.empty(B, dt)
            sigma, em1 = np.empty_like(mu), np.empty_like(mu)
            k.reparam_kl_f32(mu, logvar, eps, z, kl_pe, sigma, em1)
        else:
            z, kl_pe, sigma, em1 = _reparameterize_kl(mu, logvar, eps)
        h = z.reshape(K * B, Z)
        dec_h = []
        for lin in vae.dec.linears:
            lin.x = h
            h = h @ lin.W
            act(h, lin.b)
            dec_h.append(h)
        out = vae.dec_out
        out.x = h
        logits = (h @ out.W).reshape(K, B, vae.x_dim)         # + b inside the pass below
        # the Bernoulli term, the loss's gradient -(1/(K B)) d log p / d logits and its bias
        # sum, in one pass (18.7)
        scale = -1.0 / (K * B)
        if self.f32:
            log_px_z, dlogits, dlogits_b = np.empty((K, B), dt), np.empty_like(logits), np.empty(vae.x_dim, dt)
            k.bernoulli_out(x, logits, out.b, log_px_z, dlogits, dlogits_b, np.float32(scale))
        else:
            log_px_z, dlogits, dlogits_b = bernoulli_output(x, logits, out.b, scale)
        vae._cache = dict(fused=self, x=x, mu=mu, logvar=logvar, eps=eps, outs=(logits,),
                          beta=beta, kl="closed", mc=None, encoder=True, dlogits=dlogits,
                          dlogits_b=dlogits_b, sigma=sigma, em1=em1, enc_h=enc_h, dec_h=dec_h)
        return self._terms(log_px_z, kl_pe, mu, logvar, z, eps, beta)

    @staticmethod
    def _terms(log_px_z, kl_pe, mu, logvar, z, eps, beta):
        """The step's Terms from the Bernoulli term (K, B) and the KL (B,)."""
        K, B = log_px_z.shape
        recon = -log_px_z[0] if K == 1 else -log_px_z.mean(axis=0)
        # the four averages from two sums: at B = 100, np.mean's call costs more than its sum
        s_recon, s_kl = float(np.add.reduce(recon)), float(np.add.reduce(kl_pe))
        elbo_pe = -(recon + kl_pe)
        return Terms(loss=(s_recon + beta * s_kl) / B, elbo=-(s_recon + s_kl) / B, recon=s_recon / B,
                     kl=s_kl / B, beta=beta, elbo_per_example=elbo_pe,
                     recon_per_example=recon, kl_per_example=kl_pe, log_px_z=log_px_z,
                     mu=mu, logvar=logvar, z=z, eps=eps)

    def backward(self, cache):
        """The gradients of ``forward``'s loss into ``vae.grads`` (note 07's five steps)."""
        vae = self.vae
        mu, logvar, eps = cache["mu"], cache["logvar"], cache["eps"]
        K, B, Z = eps.shape
        out = vae.dec_out
        d = cache["dlogits"].reshape(K * B, vae.x_dim)
        np.matmul(out.x.T, d, out=out.dW)
        out.db[...] = cache["dlogits_b"]
        d = d @ out.W.T
        d = self._trunk_backward(vae.dec.linears, cache["dec_h"], d)
        c, dz = cache["beta"] / B, d.reshape(K, B, Z)       # steps 3 and 4 in one pass (18.9)
        if self.f32:
            dmu, dlogvar = np.empty_like(mu), np.empty_like(mu)
            self.k.reparam_kl_back(dz, mu, cache["sigma"], cache["em1"], eps, c, dmu, dlogvar)
        else:
            dmu, dlogvar = reparameterize_kl_backward(dz, mu, logvar, eps, c, cache["sigma"], cache["em1"])
        vae.dmu, vae.dlogvar = dmu, dlogvar
        for lin, dy in ((vae.enc_mu, dmu), (vae.enc_logvar, dlogvar)):   # step 5: the encoder
            np.matmul(lin.x.T, dy, out=lin.dW)
            np.add.reduce(dy, axis=0, out=lin.db)
        dh = dmu @ vae.enc_mu.W.T
        dh += dlogvar @ vae.enc_logvar.W.T
        self._trunk_backward(vae.enc.linears, cache["enc_h"], dh)

    def _trunk_backward(self, linears, kept, d):
        """Back through act(x W + b) layer by layer: the activation's derivative and the bias
        sum in one pass (18.8), written into the layer's db, then dW = x^T d and d W^T."""
        for lin, y in zip(reversed(linears), reversed(kept)):
            dpre = np.empty_like(d)
            self.act_back(d, y, dpre, lin.db)
            np.matmul(lin.x.T, dpre, out=lin.dW)
            d = dpre @ lin.W.T if lin.input_grad else None
        return d


class _CompiledStep(_Step):
    """``_Step`` for a float32 model as two compiled calls, ``_numba.step_forward`` and
    ``step_backward``, which make the same products (through the BLAS routine NumPy's matmul
    calls) and run the same kernels in the same order: the same numbers, without the forty-odd
    calls from Python between them (docs/benchmarks.md: "The whole step compiled").

    The compiled functions find each layer's W and b by their offsets in the flat parameter
    buffer (``table``, a row a layer); each trunk layer's output lives in one flat array.
    """

    def __init__(self, vae, kernels, sgemm):
        super().__init__(vae, kernels)
        self.sgemm = sgemm
        self.n_enc = len(vae.enc.linears)
        self.act_code = 0 if vae.activation == "relu" else 1
        self.first_grad = int(vae.enc.linears[0].input_grad)
        self._bind()

    def _bind(self):
        """The layers' offsets in the flat buffers; ValueError if a parameter or its gradient is
        not where the compiled step would look for it (it then never reads the wrong memory)."""
        vae = self.vae
        p, g = vae.flat_params, vae.flat_grads
        rows = []
        for name, lin in vae._named_linears():
            row = []
            for a, da in ((lin.W, lin.dW), (lin.b, lin.db)):
                o = _offset(a, p)
                if o is None or _offset(da, g) != o:
                    raise ValueError(f"{name}: a parameter outside the flat buffers")
                row.append(o)
            rows.append((row[0], *lin.W.shape, row[1]))
        self.table = np.array(rows, np.int64)
        # the trunk layers' outputs, one after another in one array, as _numba._kept reads them
        widths = self.table[:, 2]
        self.enc_width = int(widths[:self.n_enc].sum())
        self.dec_width = int(widths[self.n_enc + 2:-1].sum())
        self.p, self.g = p, g

    def _rebind(self):
        """Find the layers again if the model's flat buffers were replaced (a split step does)."""
        if self.vae.flat_params is not self.p or self.vae.flat_grads is not self.g:
            self._bind()

    def forward(self, x, eps, beta):
        vae = self.vae
        self._rebind()
        K, B, Z = eps.shape
        D, dt = vae.x_dim, x.dtype
        hs = np.empty(B * self.enc_width + K * B * self.dec_width, dt)
        mu, logvar, sigma, em1 = np.empty((B, Z), dt), np.empty((B, Z), dt), np.empty((B, Z), dt), np.empty((B, Z), dt)
        z, kl_pe = np.empty_like(eps), np.empty(B, dt)
        logits, log_px_z = np.empty((K, B, D), dt), np.empty((K, B), dt)
        dlogits, dlogits_b = np.empty_like(logits), np.empty(D, dt)
        self.k.step_forward(self.sgemm, self.p, self.table, self.n_enc, self.act_code, x, eps, hs,
                            mu, logvar, z, kl_pe, sigma, em1, logits, log_px_z, dlogits, dlogits_b,
                            np.float32(-1.0 / (K * B)))
        vae._cache = dict(fused=self, x=x, mu=mu, logvar=logvar, eps=eps, z=z, hs=hs, outs=(logits,),
                          beta=beta, kl="closed", mc=None, encoder=True, dlogits=dlogits,
                          dlogits_b=dlogits_b, sigma=sigma, em1=em1)
        return self._terms(log_px_z, kl_pe, mu, logvar, z, eps, beta)

    def backward(self, cache):
        vae = self.vae
        self._rebind()
        mu, eps = cache["mu"], cache["eps"]
        dmu, dlogvar = np.empty_like(mu), np.empty_like(mu)
        self.k.step_backward(self.sgemm, self.p, self.g, self.table, self.n_enc, self.act_code,
                             self.first_grad, cache["x"], cache["z"], cache["hs"], eps, mu,
                             cache["sigma"], cache["em1"], cache["dlogits"], cache["dlogits_b"],
                             cache["beta"] / eps.shape[1], dmu, dlogvar)
        vae.dmu, vae.dlogvar = dmu, dlogvar


def _offset(a, flat):
    """Where the C-contiguous view ``a`` starts in the 1-D array ``flat``, in elements; None
    when it is not a view lying wholly inside it."""
    if not (a.flags.c_contiguous and a.dtype == flat.dtype):
        return None
    o, r = divmod(a.ctypes.data - flat.ctypes.data, a.itemsize)
    return o if r == 0 and 0 <= o and o + a.size <= flat.size else None


#: the address of cblas_sgemm in the OpenBLAS NumPy calls (64-bit integers); 0 when there is
#: none to be had; None before the first look
_sgemm = None


def _sgemm_address():
    """The address of ``cblas_sgemm`` in the OpenBLAS library NumPy's own wheel carries, built
    with 64-bit integers (its name ends in ``64_``), or 0: then ``_Step`` runs, calling NumPy."""
    global _sgemm
    if _sgemm is None:
        try:
            _sgemm = _find_sgemm()
        except Exception:            # anything unexpected while looking: the step of calls
            _sgemm = 0
    return _sgemm


def _find_sgemm():
    import ctypes
    from pathlib import Path

    from threadpoolctl import threadpool_info
    here = Path(np.__file__).resolve().parent
    for info in threadpool_info():
        path = Path(info.get("filepath", ""))
        # NumPy's wheel keeps its BLAS in numpy.libs beside it (numpy/.dylibs on macOS)
        if info.get("internal_api") != "openblas" or not (
                path.parent == here.parent / "numpy.libs" or path.parent.parent == here):
            continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for name in ("scipy_cblas_sgemm64_", "cblas_sgemm64_"):
            if hasattr(lib, name):
                return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value or 0
    return 0


def _has_step(k):
    """Whether the kernels ``k`` can run the compiled step here."""
    return bool(_sgemm_address()) and hasattr(k, "step_forward")


def _warm_step(k):
    """Run the compiled step once on a tiny model of each activation (the in-process compiler
    compiles it here) and hold its gradients to those of ``_Step`` on the same model (a BLAS
    routine called with the wrong arguments would give other numbers); on any failure the
    compiled step is left out, with one line, and ``_Step`` runs the kernels one call at a time."""
    global _sgemm
    if not _has_step(k):
        return
    rng = np.random.default_rng(0)
    x = (rng.random((2, 3)) < 0.5).astype(np.float32)
    eps = rng.standard_normal((1, 2, 2), dtype=np.float32)
    try:
        for act in ("relu", "tanh"):
            grads = []
            for make in (lambda v: _Step(v, k), lambda v: _CompiledStep(v, k, _sgemm)):
                vae = VAE(3, 2, hidden=(4,), activation=act, seed=0, dtype=np.float32)
                step = make(vae)
                step.forward(x, eps, 1.0)
                step.backward(vae._cache)
                grads.append(vae.flat_grads)
            # the same products and loops: equal up to a rounding or so (tests/test_fused.py)
            if not np.allclose(grads[1], grads[0], rtol=1e-5, atol=1e-5 * np.abs(grads[0]).max()):
                raise ValueError("its gradients on a tiny model are not the step of calls'")
    except Exception as e:
        _sgemm = 0
        _say(f"the compiled whole step could not run ({_first_line(e)}); "
             "the fused step calls its kernels one at a time")


def _step_of(vae):
    """The model's ``_Step`` (made once and kept while attached), or None when the fused step
    does not take the model or the kernels are off. A float32 model gets the compiled step when
    the kernels have it and NumPy's BLAS can be called from it."""
    step = vars(vae).get("_fused_step")
    if step is not None and step.k is _kernels:
        return step
    if not (fits(vae) and available()):
        return None
    step = None
    if np.dtype(vae.dtype) == np.float32 and _has_step(_kernels):
        try:
            step = _CompiledStep(vae, _kernels, _sgemm)
        except ValueError:           # parameters outside the flat buffers: the step below
            step = None
    if step is None:
        step = _Step(vae, _kernels)
    if attached(vae):
        vae._fused_step = step
    return step


def fused_forward(vae, x, eps=None, k=None, beta=1.0, kl="closed", q=None) -> Terms:
    """``vae.forward`` with the fused kernels: the same arguments, checks and Terms.

    Runs the model's own forward when ``fits(vae)`` is False, for kl="mc" and for a given q,
    and when a kernel refuses its arguments (then the kernels are switched off, with one line).
    The step is note 07's: encoder, z = mu + sigma eps and the KL (18.9), decoder with the bias
    and activation fused (18.8), the Bernoulli term with its gradient (18.7), which the backward
    then only reads.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
    """
    step = _step_of(vae) if kl == "closed" and q is None else None
    if step is None:
        return type(vae).forward(vae, x, eps=eps, k=k, beta=beta, kl=kl, q=q)
    x, eps, _ = vae._forward_args(x, eps, k, beta, kl, q)
    x, eps = np.ascontiguousarray(x), np.ascontiguousarray(eps)   # as the kernels take them
    try:
        return step.forward(x, eps, float(beta))
    except Exception as e:           # a kernel refused: nothing of the model's was written
        _switch_off(f"the fused step failed ({_first_line(e)})")
        return type(vae).forward(vae, x, eps=eps, beta=beta, kl=kl)


def fused_backward(vae) -> None:
    """``vae.backward`` after ``fused_forward``: the same gradients in ``vae.grads``.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
    """
    cache = vae._cache
    if cache is None or not cache.get("fused"):
        return type(vae).backward(vae)
    try:
        cache["fused"].backward(cache)
    except Exception as e:           # a kernel refused: the model's own step, same x and eps
        _switch_off(f"the fused step failed ({_first_line(e)})")
        type(vae).forward(vae, cache["x"], eps=cache["eps"], beta=cache["beta"])
        type(vae).backward(vae)


def attach(vae) -> bool:
    """Route ``vae.forward`` and ``vae.backward`` (this instance only) through the fused step;
    True when it will be fused, False (nothing changed) when it cannot be.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
    """
    if not (fits(vae) and available()):
        return False
    def forward(*a, **kw):
        return fused_forward(vae, *a, **kw)
    forward.fused = True
    vae.forward = forward
    vae.backward = lambda: fused_backward(vae)
    return True


def attached(vae) -> bool:
    """Whether ``attach`` routed this instance through the fused step (a split step's replicas
    of it are routed too).

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
    """
    return getattr(vars(vae).get("forward"), "fused", False)


def detach(vae) -> None:
    """Undo ``attach``: ``vae.forward`` and ``vae.backward`` are the model's own again.

    Derivation: derivations/18_where_the_time_goes.md, eq. (18.5)
    """
    for name in ("forward", "backward", "_fused_step"):
        vars(vae).pop(name, None)
    if vae._cache is not None and vae._cache.get("fused"):
        vae._cache = None            # a fused cache is not the model's own backward's
