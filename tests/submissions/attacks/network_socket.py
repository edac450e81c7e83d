"""Attack: open a network connection (to send the cases out, or fetch an answer in)."""
# ruff: noqa  (an attack: its tricks are the point)
import socket
import numpy as np

try:
    with socket.create_connection(("127.0.0.1", __PORT__), timeout=2) as s:
        s.sendall(b"leaked")
    print("connected")
except OSError as exc:
    print("no network:", exc)


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return np.zeros_like(dy)
