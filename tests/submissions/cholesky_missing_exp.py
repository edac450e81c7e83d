"""Corpus submission: Cholesky backward without the diagonal's exp factor"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def reparameterize_full_backward(dz, logvar, off, eps):
    Z = logvar.shape[1]
    G = np.einsum("kbi,kbj->bij", dz, eps)
    rows, cols = np.tril_indices(Z, -1)
    idx = np.arange(Z)
    return dz.sum(axis=0), 0.5 * G[:, idx, idx], G[:, rows, cols]
