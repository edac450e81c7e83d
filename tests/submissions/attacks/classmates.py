"""Attack (a local batch): list the classmates' submissions and append to one of them."""
# ruff: noqa  (an attack: its tricks are the point)
import os
import numpy as np

try:
    for root, dirs, files in os.walk("__BATCH__"):
        for f in files:
            p = os.path.join(root, f)
            print("found", p)
            if "classmate" in p:
                with open(p, "a") as fh:
                    fh.write("\n# tampered\n")
except OSError as exc:
    print("could not look:", exc)


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return np.zeros_like(dy)
