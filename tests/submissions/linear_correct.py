"""Corpus submission: correct Linear with out="""
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
        np.matmul(self.x.T, dy, out=self.dW)
        np.sum(dy, axis=0, out=self.db)
        return dy @ self.W.T if self.input_grad else None
