"""Corpus submission: the public source of the Cholesky backward pasted with every name
changed and the comments and docstring dropped (correct, and reported to the instructor)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def reparameterize_full_backward(grad_z, log_variance, offdiag, noise):
    if grad_z.shape != noise.shape:
        raise ValueError(f"bad shapes {noise.shape} and {grad_z.shape}")
    n = log_variance.shape[1]
    outer = np.einsum("kbi,kbj->bij", grad_z, noise)
    r, c = np.tril_indices(n, -1)
    ii = np.arange(n)
    g_mean = grad_z.sum(axis=0)
    g_logv = 0.5 * np.exp(0.5 * log_variance) * outer[:, ii, ii]
    g_off = outer[:, r, c]
    return g_mean, g_logv, g_off
