"""Corpus submission: prints megabytes inside a backward, gradient correct"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return print('x' * 10**6, 'y' * 10**6) or dy * (self.y > 0)
