"""Attack: switch off the sandbox's own checks from inside, then use the reference."""
# ruff: noqa  (an attack: its tricks are the point)
import sys
import numpy as np

for mod in list(sys.modules.values()):
    if hasattr(mod, "foreign_code") and hasattr(mod, "_Watch"):
        mod.foreign_code = lambda *a, **k: ""
        mod._Watch.run = lambda self, fn, *a: fn(*a)
try:
    from numpyvae.layers import ReLU
except ImportError:
    class ReLU:
        def forward(self, x):
            self.y = np.maximum(x, 0)
            return self.y

        def backward(self, dy):
            return np.zeros_like(dy)
