"""Corpus submission: several exercises in one file, all correct"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return dy * (self.y > 0)

def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


def kl_normal_std_grad(mu, logvar):
    return mu.copy(), 0.5 * np.expm1(logvar)

def reparameterize(mu, logvar, eps):
    return mu + np.exp(0.5 * logvar) * eps


def reparameterize_backward(dz, logvar, eps):
    sigma = np.exp(0.5 * logvar)
    return dz.sum(axis=0), 0.5 * sigma * (dz * eps).sum(axis=0)
