"""Corpus submission: correct tanh, sigmoid, softplus"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

class Tanh:
    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y ** 2)


class Sigmoid:
    def forward(self, x):
        self.y = 1 / (1 + np.exp(-x))
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


class Softplus:
    def forward(self, x):
        self.x = x
        return np.logaddexp(0, x)

    def backward(self, dy):
        return dy / (1 + np.exp(-self.x))
