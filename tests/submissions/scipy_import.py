"""Corpus submission: a correct KL gradient in a file that imports SciPy (not in the
grader's image; the kit allows NumPy and the standard library)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np
import scipy.special


def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


def kl_normal_std_grad(mu, logvar):
    return mu.copy(), 0.5 * np.expm1(logvar)
