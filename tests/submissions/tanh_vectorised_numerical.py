"""Corpus submission: Tanh.backward as one vectorised central difference of the forward,
elementwise (derives nothing, yet passes: the limit the large cases cannot close, stated in
the instructors' guide)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


class Tanh:
    def forward(self, x):
        self.x = x
        return np.tanh(x)

    def backward(self, dy, h=1e-5):
        return dy * (np.tanh(self.x + h) - np.tanh(self.x - h)) / (2 * h)
