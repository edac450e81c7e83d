"""Corpus submission: dlogvar without the 1/2"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

def reparameterize(mu, logvar, eps):
    return mu + np.exp(0.5 * logvar) * eps


def reparameterize_backward(dz, logvar, eps):
    sigma = np.exp(0.5 * logvar)
    return dz.sum(axis=0), sigma * (dz * eps).sum(axis=0)
