"""Corpus submission: mean over the K samples instead of a sum"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

def reparameterize(mu, logvar, eps):
    return mu + np.exp(0.5 * logvar) * eps


def reparameterize_backward(dz, logvar, eps):
    sigma = np.exp(0.5 * logvar)
    return dz.mean(axis=0), 0.5 * sigma * (dz * eps).mean(axis=0)
