"""Corpus submission: returns one array where a tuple of two is asked"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


def kl_normal_std_grad(mu, logvar):
    return mu.copy()
