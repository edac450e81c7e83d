"""Attack: read the installed numpyvae source and compile it as if it were this file."""
# ruff: noqa  (an attack: its tricks are the point)
import numpy as np

_ns = {"__name__": "copied"}
try:
    _src = open("__REFERENCE__/layers.py").read()
    exec(compile(_src, __file__, "exec"), _ns)      # code objects labelled with this file
except OSError as exc:
    print("could not read the reference:", exc)

if "ReLU" in _ns:
    ReLU = _ns["ReLU"]
else:
    class ReLU:
        def forward(self, x):
            self.y = np.maximum(x, 0)
            return self.y

        def backward(self, dy):
            return np.zeros_like(dy)
