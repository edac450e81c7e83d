"""Corpus submission: untouched stubs"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


def kl_normal_std_grad(mu, logvar):
    raise NotImplementedError("Exercise 1")

class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return NotImplemented if False else (_ for _ in ()).throw(NotImplementedError())
