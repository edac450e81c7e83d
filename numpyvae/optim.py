"""Optimizers that update one parameter array in place from its gradient array.

Pass the VAE's flat buffers: ``opt.step(vae.flat_params, vae.flat_grads)``. Every
update is a handful of vectorised in-place operations on the whole buffer.
Weight decay adds ``weight_decay * theta`` to the gradient (L2 regularisation).
"""
from __future__ import annotations

import numpy as np

__all__ = ["SGD", "Adagrad", "Adam", "make_optimizer", "OPTIMIZERS"]


def _check_lr(lr):
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return float(lr)


class _Optimizer:
    def __init__(self, lr, weight_decay):
        self.lr = _check_lr(lr)
        if not np.isfinite(weight_decay) or weight_decay < 0:
            raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self.t = 0

    def _grad(self, params, grads):
        if params.shape != grads.shape:
            raise ValueError(f"params {params.shape} and grads {grads.shape} must match")
        return grads + self.weight_decay * params if self.weight_decay else grads

    def _state(self, shape, dtype, name):
        buf = getattr(self, name)
        if buf is None or buf.shape != shape:
            buf = np.zeros(shape, dtype=dtype)
            setattr(self, name, buf)
        return buf

    def state_dict(self) -> dict:
        """The optimizer's state as arrays (for checkpoints)."""
        d = {"t": np.array(self.t)}
        for name in self._buffers:
            if getattr(self, name) is not None:
                d[name] = getattr(self, name).copy()
        return d

    def load_state_dict(self, state: dict) -> None:
        """Restore from ``state_dict()`` output."""
        self.t = int(state["t"])
        for name in self._buffers:
            setattr(self, name, np.array(state[name]) if name in state else None)


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
    """Adam with bias-corrected moments.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.11)
    """
    _buffers = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must both be in [0, 1), got {betas!r}")
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.m = self.v = None
        self._tmp = None

    def step(self, params, grads):
        g = self._grad(params, grads)
        self.t += 1
        m = self._state(params.shape, params.dtype, "m")
        v = self._state(params.shape, params.dtype, "v")
        if self._tmp is None or self._tmp.shape != params.shape:
            self._tmp = np.empty_like(params)
        tmp = self._tmp
        # m <- b1 m + (1 - b1) g, written as m <- b1 (m - g) + g to avoid a temporary
        m -= g
        m *= self.b1
        m += g
        np.multiply(g, g, out=tmp)
        v -= tmp
        v *= self.b2
        v += tmp
        # fold both bias corrections into one step size and one eps
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        np.sqrt(v, out=tmp)
        tmp += self.eps * np.sqrt(c2)
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr * np.sqrt(c2) / c1
        params -= tmp


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
