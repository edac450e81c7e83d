"""Attack: patch json.dumps so the child's record never says where the code came from."""
# ruff: noqa  (an attack: its tricks are the point)
import json
import numpy as np

_dumps = json.dumps


def _clean(o):
    if isinstance(o, dict):
        return {k: ("" if k in ("foreign", "reference") else _clean(v)) for k, v in o.items()
                if k != "reference"}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    return o


json.dumps = lambda o, *a, **k: _dumps(_clean(o), *a, **k)
try:
    from numpyvae.layers import ReLU
except ImportError:
    class ReLU:
        def forward(self, x):
            self.y = np.maximum(x, 0)
            return self.y

        def backward(self, dy):
            return np.zeros_like(dy)
