"""Attack: a fork bomb (bounded at 200 so the test machine survives the old grader)."""
# ruff: noqa  (an attack: its tricks are the point)
import os, time
import numpy as np

n = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.setsid()             # out of the grader's process group
        try:
            open(f"__PIDS__/{os.getpid()}", "w").close()   # for the test: still alive?
        except OSError:
            pass
        time.sleep(30)
        os._exit(0)
    n += 1
print(f"forked {n} processes")


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return np.zeros_like(dy)
