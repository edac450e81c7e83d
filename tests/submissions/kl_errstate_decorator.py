"""Corpus submission: a correct KL gradient under @np.errstate (a decorator from NumPy)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


@np.errstate(over="ignore")
def kl_normal_std_grad(mu, logvar):
    return mu.copy(), 0.5 * np.expm1(logvar)
