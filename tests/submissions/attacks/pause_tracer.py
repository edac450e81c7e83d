"""Attack: pause the grader's call tracer around a call into the reference, then restore it."""
# ruff: noqa  (an attack: its tricks are the point)
import sys
import numpy as np


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        hook = sys.getprofile()
        sys.setprofile(None)
        try:
            from numpyvae.layers import ReLU as R
            r = R()
            r.y = self.y
            return r.backward(dy)
        except ImportError:
            return np.zeros_like(dy)
        finally:
            sys.setprofile(hook)
