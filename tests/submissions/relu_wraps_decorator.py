"""Corpus submission: a correct ReLU whose backward goes through a functools.wraps decorator"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import functools

import numpy as np


def checked(fn):
    @functools.wraps(fn)
    def wrapper(self, dy):
        out = fn(self, dy)
        assert out.shape == dy.shape
        return out
    return wrapper


class ReLU:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    @checked
    def backward(self, dy):
        return dy * (self.x > 0)
