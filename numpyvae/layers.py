"""Layers with hand-written backward passes.

Each layer is a forward/backward pair. ``forward(x)`` keeps what the backward
needs; ``backward(dy)`` returns dL/dx and, for layers with parameters, *writes*
(never adds) dL/dW and dL/db into the layer's gradient arrays.

Shapes: a batch is a 2-D array ``x: (B, D_in)``; the output is ``(B, D_out)``.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus", "Identity",
    "MLP", "make_activation", "ACTIVATIONS",
]


class Linear:
    """Affine map ``y = x @ W + b`` with ``W: (D_in, D_out)``, ``b: (D_out,)``.

    Initialisation: weights drawn from N(0, s^2) with s = sqrt(2 / D_in) (He) when
    the layer feeds a ReLU-family activation, s = sqrt(2 / (D_in + D_out))
    (Glorot) otherwise; biases start at zero. ``init`` selects "he" or "glorot";
    "uniform" draws W and b from U(-1/sqrt(D_in), 1/sqrt(D_in)) (PyTorch's nn.Linear default).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.1)
    Derivation: derivations/06_backprop_mlp.md, eq. (6.14)
    """

    def __init__(self, d_in: int, d_out: int, rng: np.random.Generator,
                 init: str = "he", dtype=np.float64):
        if init == "uniform":   # PyTorch nn.Linear's default: W, b ~ U(-1/sqrt(D_in), 1/sqrt(D_in))
            bound = 1.0 / np.sqrt(d_in)
            self.W = rng.uniform(-bound, bound, (d_in, d_out)).astype(dtype)
            self.b = rng.uniform(-bound, bound, d_out).astype(dtype)
        elif init in ("he", "glorot"):
            std = np.sqrt(2.0 / d_in) if init == "he" else np.sqrt(2.0 / (d_in + d_out))
            self.W = (rng.standard_normal((d_in, d_out)) * std).astype(dtype)
            self.b = np.zeros(d_out, dtype=dtype)
        else:
            raise ValueError(f"init must be 'he', 'glorot' or 'uniform', got {init!r}")
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.x = None
        self.input_grad = True   # False on a first layer, whose dL/dx nobody needs

    def params(self) -> dict:
        return {"W": self.W, "b": self.b}

    def grads(self) -> dict:
        return {"W": self.dW, "b": self.db}

    def forward(self, x):
        """x: (B, D_in) -> (B, D_out)."""
        self.x = x
        y = x @ self.W
        y += self.b
        return y

    def backward(self, dy):
        """dy: (B, D_out) -> dx: (B, D_in); writes dW = x^T dy, db = sum_B dy.

        Returns None when ``input_grad`` is False.
        """
        np.matmul(self.x.T, dy, out=self.dW)
        np.sum(dy, axis=0, out=self.db)
        return dy @ self.W.T if self.input_grad else None


class ReLU:
    """``y = max(x, 0)``; ``dx = dy * [x > 0]``.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.2)
    """

    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return dy * (self.y > 0)


class LeakyReLU:
    """``y = x`` for x > 0, ``slope * x`` otherwise; ``dx = dy * (1 or slope)``.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.3)
    """

    def __init__(self, slope: float = 0.01):
        self.slope = slope

    def forward(self, x):
        self.pos = x > 0
        return np.where(self.pos, x, self.slope * x)

    def backward(self, dy):
        return np.where(self.pos, dy, self.slope * dy)


class Tanh:
    """``y = tanh(x)``; ``dx = dy * (1 - y^2)``.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.4)
    """

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y * self.y)


def _sigmoid(x):
    # the tanh form is exact algebra, never overflows and needs one transcendental
    return 0.5 + 0.5 * np.tanh(0.5 * x)


class Sigmoid:
    """``y = 1 / (1 + exp(-x))``; ``dx = dy * y * (1 - y)``.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.5)
    """

    def forward(self, x):
        self.y = _sigmoid(x)
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


class Softplus:
    """``y = log(1 + exp(x))`` (computed stably); ``dx = dy * sigmoid(x)``.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.6)
    """

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def backward(self, dy):
        return dy * _sigmoid(self.x)


class Identity:
    """``y = x``; ``dx = dy``.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.7)
    """

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


ACTIVATIONS = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh,
    "sigmoid": Sigmoid, "softplus": Softplus, "identity": Identity,
}


def make_activation(name: str):
    """A new activation layer by name (one of ``ACTIVATIONS``).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.8)
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class MLP:
    """A stack Linear -> act -> Linear -> act ... over ``sizes = (D_0, ..., D_L)``.

    Every Linear is followed by the activation, so the output of the last layer is
    activated too: the VAE puts its linear heads on top of this trunk. With
    ``sizes`` of length 1 the MLP has no layers and is the identity map.
    Parameters are named ``"{i}.W"``, ``"{i}.b"`` for the i-th Linear.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.8)
    """

    def __init__(self, sizes, activation: str, rng: np.random.Generator,
                 dtype=np.float64, init=None):
        if init is None:    # He for the ReLU family, Glorot otherwise (see Linear)
            init = "he" if activation in ("relu", "leaky_relu") else "glorot"
        self.linears = [Linear(a, b, rng, init=init, dtype=dtype)
                        for a, b in zip(sizes[:-1], sizes[1:])]
        self.acts = [make_activation(activation) for _ in self.linears]

    def params(self) -> dict:
        return {f"{i}.{k}": v for i, lin in enumerate(self.linears)
                for k, v in lin.params().items()}

    def grads(self) -> dict:
        return {f"{i}.{k}": v for i, lin in enumerate(self.linears)
                for k, v in lin.grads().items()}

    def forward(self, x):
        """x: (B, D_0) -> (B, D_L)."""
        for lin, act in zip(self.linears, self.acts):
            x = act.forward(lin.forward(x))
        return x

    def backward(self, dy):
        """dy: (B, D_L) -> dx: (B, D_0); fills every Linear's gradients."""
        for lin, act in zip(reversed(self.linears), reversed(self.acts)):
            dy = lin.backward(act.backward(dy))
        return dy

    def layers(self):
        """(name, Linear) pairs in order."""
        return [(str(i), lin) for i, lin in enumerate(self.linears)]
