"""Attack: leave a process in a session of its own that rewrites results.json after grading."""
# ruff: noqa  (an attack: its tricks are the point)
import json, os, time
import numpy as np

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("__PIDS__/rewriter", "w") as f:      # for the test: is it still alive?
            f.write(str(os.getpid()))
        for _ in range(40):            # about 8 s: long after the grader has written its file
            time.sleep(0.2)
            try:
                with open("__RESULTS__", "w") as f:
                    json.dump({"score": 99.0, "output": "rewritten", "tests": []}, f)
            except OSError:
                pass
        os._exit(0)
    os._exit(0)
os.wait()


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return np.zeros_like(dy)
