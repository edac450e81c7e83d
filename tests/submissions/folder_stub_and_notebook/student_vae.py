"""Corpus submission: the untouched stub, uploaded beside the finished notebook"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

__exercises__ = ["relu_backward", "kl_normal_std_grad"]


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        """Exercise 1: ..."""
        raise NotImplementedError("Exercise 1: relu_backward is not implemented yet")


def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


def kl_normal_std_grad(mu, logvar):
    """Exercise 2: ..."""
    raise NotImplementedError("Exercise 2: kl_normal_std_grad is not implemented yet")
