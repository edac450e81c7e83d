"""Optimizers that update one parameter array in place from its gradient array.

Pass the VAE's flat buffers: ``opt.step(vae.flat_params, vae.flat_grads)``. Every
update is a handful of vectorised operations on the whole buffer.
Weight decay adds ``weight_decay * theta`` to the gradient (L2 regularisation).

An optimizer's state (momentum, moments, step count) belongs to one parameter array: the
first ``step`` binds it to the array it is given, and a later ``step`` on another array is
refused with a ValueError (make one optimizer per parameter array). ``load_state_dict``
unbinds it, so a restored optimizer binds to the (new) model's buffer on its next step.

``Adam`` reads like Kingma & Ba's algorithm; ``numpyvae/speed/adam.py`` computes the same
numbers in place, one cache-sized block of the buffer at a time (``tests/test_fast_paths.py``
proves them equal over many steps).

Moment buffers that only decay (an entry whose gradient is exactly zero for a while: a pixel
that is blank in every image of the recent minibatches, a dead ReLU unit) shrink towards the
subnormal range, where x86 arithmetic is many times slower. Training 784-400-20 ReLU on MNIST
(float32, batch 128), 12% of Adam's first moment was subnormal from the third epoch on, and the
update took 3.4x as long (each epoch 1.55x). Every few steps ``_flush_tiny``
sets such entries to zero, long before they get there (``_flush_period``); what they could
still add to an update is negligible (with the default eps, below 1e-20 of the learning rate).
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["SGD", "Adagrad", "Adam", "make_optimizer", "OPTIMIZERS"]


def _check_lr(lr):
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return float(lr)


@functools.cache
def _flush_period(decay: float) -> int:
    """Steps within which a state entry multiplied by ``decay`` each step falls by at most
    2**-24: from ``_tiny`` (flushed below) it then stays above the smallest normal number."""
    if decay <= 0:
        return 1 << 30     # nothing carries over from step to step
    return max(1, int(24 * np.log(2) / -np.log(decay)))


def _tiny(dtype) -> float:
    return float(np.finfo(dtype).tiny) * 2.0 ** 24


def _flush_tiny(buf, tiny):
    """Set the entries of ``buf`` with |entry| < ``tiny`` to zero, in place."""
    buf[np.abs(buf) < tiny] = 0


class _Optimizer:
    def __init__(self, lr, weight_decay):
        self.lr = _check_lr(lr)
        if not np.isfinite(weight_decay) or weight_decay < 0:
            raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self.t = 0
        self._bound = None       # the parameter array this optimizer's state belongs to

    def _bind(self, params):
        """Bind the state to ``params`` on the first step; refuse any other array after."""
        if not isinstance(params, np.ndarray):
            raise TypeError(f"params must be a NumPy array, got {type(params).__name__}")
        bound = self._bound
        if bound is None:
            for name in self._buffers:     # state restored by load_state_dict must fit
                buf = getattr(self, name)
                if buf is not None and buf.shape != params.shape:
                    raise ValueError(f"params has shape {params.shape} but this optimizer's "
                                     f"restored state {name!r} has shape {buf.shape}")
            self._bound = params
        elif params is not bound and not _same_memory(params, bound):
            raise ValueError(
                f"params: this {type(self).__name__} holds the state of another parameter array "
                f"(shape {bound.shape}); it was given a different array of shape {params.shape}. "
                "Use one optimizer per parameter array, e.g. "
                "opt.step(vae.flat_params, vae.flat_grads) every time.")

    def _grad(self, params, grads):
        self._bind(params)
        if params.shape != grads.shape:
            raise ValueError(f"params {params.shape} and grads {grads.shape} must match")
        return grads + self.weight_decay * params if self.weight_decay else grads

    def _state(self, shape, dtype, name):
        buf = getattr(self, name)
        if buf is None:
            buf = np.zeros(shape, dtype=dtype)
            setattr(self, name, buf)
        return buf

    def state_dict(self, into: dict | None = None, copy: bool = True) -> dict:
        """The optimizer's state as arrays of its own (for checkpoints). With ``into``, an earlier
        ``state_dict`` of it, the state is copied into that dict's arrays where shapes and dtypes
        match, instead of new ones (the trainer's snapshot at every epoch's end). With
        ``copy=False``, read-only views of the live buffers, valid until the next step (a
        checkpoint written at once needs no copy)."""
        d = {"t": np.array(self.t)}
        for name in self._buffers:
            buf = getattr(self, name)
            if buf is None:
                continue
            if not copy:
                d[name] = buf.view()
                d[name].flags.writeable = False
                continue
            old = None if into is None else into.get(name)
            if isinstance(old, np.ndarray) and old.shape == buf.shape and old.dtype == buf.dtype:
                np.copyto(old, buf)
                d[name] = old
            else:
                d[name] = buf.copy()
        return d

    def load_state_dict(self, state: dict) -> None:
        """Restore from ``state_dict()`` output."""
        self.t = int(state["t"])
        for name in self._buffers:
            setattr(self, name, np.array(state[name]) if name in state else None)
        self._bound = None       # binds to the array of the next step (shapes checked then)

    def rebind(self, params) -> None:
        """Tie the state to ``params`` from now on: the same parameters, moved to another array
        (a training split moves them into shared memory)."""
        self._bound = None
        self._bind(params)


def _same_memory(a, b):
    """True when a and b are views of exactly the same elements (same start, shape, strides)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


class SGD(_Optimizer):
    """theta <- theta - lr * v, with v <- momentum * v + g (v = g when momentum = 0).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.9)
    """
    _buffers = ("v",)

    def __init__(self, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.v = None

    def step(self, params, grads):
        g = self._grad(params, grads)
        self.t += 1
        if self.momentum:
            v = self._state(params.shape, params.dtype, "v")
            v *= self.momentum
            v += g
            if self.t % _flush_period(self.momentum) == 0:     # see the module docstring
                _flush_tiny(v, _tiny(v.dtype))
            g = v
        params -= self.lr * g


class Adagrad(_Optimizer):
    """G <- G + g^2;  theta <- theta - lr * g / (sqrt(G) + eps).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.10)
    """
    _buffers = ("G",)

    def __init__(self, lr=0.01, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.eps = float(eps)
        self.G = None

    def step(self, params, grads):
        g = self._grad(params, grads)
        self.t += 1
        G = self._state(params.shape, params.dtype, "G")
        G += g * g
        params -= self.lr * g / (np.sqrt(G) + self.eps)


class Adam(_Optimizer):
    """Adam with bias-corrected moments (Kingma & Ba, Algorithm 1).

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).

    The state is Kingma & Ba's pair of moments ``m`` and ``v`` and the step count ``t``. A
    faster form of the same update (blocks of the buffer kept in cache, the bias corrections
    as two scalars) is ``numpyvae.speed.adam.BlockedAdam``, tested equal to this one.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.11)
    """
    _buffers = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must both be in [0, 1), got {betas!r}")
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"eps must be a non-negative number, got {eps!r}")
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.m = self.v = None

    def _flush_moments(self, m, v):
        """Every ``_flush_period`` steps, zero the entries of m (and, with eps > 0, of v) that
        decayed close to the subnormal range (see the module docstring). With eps = 0 a zeroed
        v would divide 0 by 0, so it is left alone."""
        if self.t % min(_flush_period(self.b1), _flush_period(self.b2)) == 0:
            tiny = _tiny(m.dtype)
            self._zero_tiny(m, tiny)
            if self.eps > 0:
                self._zero_tiny(v, tiny)

    def _zero_tiny(self, buf, tiny):
        """``_flush_tiny`` (the blocked fast path, ``speed/adam.py``, does it a block at a time)."""
        _flush_tiny(buf, tiny)

    def step(self, params, grads):
        """One Adam update of ``params`` in place from ``grads`` (same shape)."""
        g = self._grad(params, grads)
        self.t += 1
        m = self._state(params.shape, params.dtype, "m")
        v = self._state(params.shape, params.dtype, "v")
        b1, b2, t = self.b1, self.b2, self.t
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        params -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        self._flush_moments(m, v)


OPTIMIZERS = ("sgd", "momentum", "adagrad", "adam")


def make_optimizer(name: str, lr: float, **kw):
    """An optimizer by name: "sgd", "momentum" (SGD with momentum 0.9 unless given),
    "adagrad" or "adam".

    Derivation: derivations/06_backprop_mlp.md, eq. (6.9)
    """
    if name == "sgd":
        return SGD(lr, **kw)
    if name == "momentum":
        kw.setdefault("momentum", 0.9)
        return SGD(lr, **kw)
    if name == "adagrad":
        return Adagrad(lr, **kw)
    if name == "adam":
        return Adam(lr, **kw)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
