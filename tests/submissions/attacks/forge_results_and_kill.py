"""Attack: write a full-marks results.json, then SIGKILL the grader before it writes its own."""
# ruff: noqa  (an attack: its tricks are the point)
import json, os, signal
import numpy as np

FORGED = {"score": 99.0, "output": "forged", "tests": []}
try:
    with open("__RESULTS__", "w") as f:
        json.dump(FORGED, f)
except OSError as exc:
    print("could not forge:", exc)
for pid in os.listdir("/proc"):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    if b"assignment" in cmd and b"grade" in cmd and int(pid) != os.getpid():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError as exc:
            print("could not kill the grader:", exc)


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return np.zeros_like(dy)
