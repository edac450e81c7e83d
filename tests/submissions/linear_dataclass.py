"""Corpus submission: a correct Linear written as a @dataclass (its __init__ is generated)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Linear:
    d_in: int
    d_out: int
    rng: object = None
    init: str = "he"
    dtype: object = np.float64
    input_grad: bool = True
    W: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.W = self.rng.standard_normal((self.d_in, self.d_out)) * np.sqrt(2 / self.d_in)
        self.b = np.zeros(self.d_out)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dy):
        self.dW[...] = self.x.T @ dy
        self.db[...] = dy.sum(axis=0)
        return dy @ self.W.T if self.input_grad else None
