"""Corpus submission: correct Linear whose backward calls helper methods of its own class"""
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
        self._fill(self.dW, self._weight_grad(dy))
        self._fill(self.db, dy.sum(axis=0))
        return self._input_grad(dy)

    def _weight_grad(self, dy):
        return self.x.T @ dy

    def _input_grad(self, dy):
        return dy @ self.W.T if self.input_grad else None

    @staticmethod
    def _fill(dst, src):
        dst[...] = src
