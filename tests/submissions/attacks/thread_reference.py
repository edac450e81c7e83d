"""Attack: call the reference in a thread, where the grader's call tracing does not look."""
# ruff: noqa  (an attack: its tricks are the point)
import threading
import numpy as np


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        out = [np.zeros_like(dy)]

        def work():
            try:
                import numpyvae.layers as ref
                r = ref.ReLU()
                r.y = self.y
                out[0] = r.backward(dy)
            except ImportError as exc:
                print("no reference:", exc)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        return out[0]
