"""Corpus submission: sys.exit(0) inside a backward; KL is correct"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np
import sys

class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return sys.exit(0)

def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


def kl_normal_std_grad(mu, logvar):
    return mu.copy(), 0.5 * np.expm1(logvar)
