"""Corpus submission: Linear.backward by central differences of its own forward, one
coordinate at a time (derives nothing: correct on small cases, far too slow on MNIST's
784x400 layer)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


class Linear:
    def __init__(self, d_in, d_out, rng, init="he", dtype=np.float64):
        self.W = rng.standard_normal((d_in, d_out)).astype(dtype)
        self.b = np.zeros(d_out, dtype=dtype)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.input_grad = True

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def _numeric(self, arr, dy, h=1e-5):
        grad = np.zeros_like(arr)
        flat, g = arr.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            fp = np.sum((self.x @ self.W + self.b) * dy)
            flat[i] = old - h
            fm = np.sum((self.x @ self.W + self.b) * dy)
            flat[i] = old
            g[i] = (fp - fm) / (2 * h)
        return grad

    def backward(self, dy):
        self.dW[...] = self._numeric(self.W, dy)
        self.db[...] = self._numeric(self.b, dy)
        return self._numeric(self.x, dy) if self.input_grad else None
