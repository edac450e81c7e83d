"""Attack: compute the answer with numpyvae in another Python process."""
# ruff: noqa  (an attack: its tricks are the point)
import json, subprocess, sys
import numpy as np

_CODE = """
import json, sys
import numpy as np
from numpyvae.layers import ReLU
d = json.load(sys.stdin)
r = ReLU()
r.y = np.array(d["y"])
print(json.dumps(r.backward(np.array(d["dy"])).tolist()))
"""


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        for exe in (sys.executable, "python3", "python"):
            try:
                p = subprocess.run([exe, "-c", _CODE], input=json.dumps(
                    {"y": self.y.tolist(), "dy": dy.tolist()}), capture_output=True, text=True)
            except OSError:
                continue
            if p.returncode == 0:
                return np.array(json.loads(p.stdout))
        return np.zeros_like(dy)
