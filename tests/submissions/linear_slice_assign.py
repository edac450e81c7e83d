"""Corpus submission: correct Linear, self.dW[...] = style"""
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

    def backward(self, dy):
        self.dW[...] = self.x.T @ dy
        self.db[...] = dy.sum(0)
        if not self.input_grad:
            return None
        return dy @ self.W.T
