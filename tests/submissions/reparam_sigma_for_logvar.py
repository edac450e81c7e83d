"""Corpus submission: returns dL/dsigma where dL/dlogvar is asked"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

def reparameterize(mu, logvar, eps):
    return mu + np.exp(0.5 * logvar) * eps


def reparameterize_backward(dz, logvar, eps):
    return dz.sum(axis=0), (dz * eps).sum(axis=0)
