"""Corpus submission: returns one array where a tuple of two is asked"""
import numpy as np

def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


def kl_normal_std_grad(mu, logvar):
    return mu.copy()
