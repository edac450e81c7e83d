"""Attack: take the reference's code objects and relabel them with this file's name."""
# ruff: noqa  (an attack: its tricks are the point)
import types
import numpy as np


def _relabel(fn):
    code = fn.__code__.replace(co_filename=__file__)
    return types.FunctionType(code, fn.__globals__, fn.__name__)


try:
    from numpyvae.layers import ReLU as _R

    class ReLU:
        forward = _relabel(_R.forward)
        backward = _relabel(_R.backward)
except ImportError:
    class ReLU:
        def forward(self, x):
            self.y = np.maximum(x, 0)
            return self.y

        def backward(self, dy):
            return np.zeros_like(dy)
