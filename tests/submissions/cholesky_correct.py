"""Corpus submission: correct backward of z = mu + L eps (loops over the triangle)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def reparameterize_full_backward(dz, logvar, off, eps):
    K, B, Z = dz.shape
    dmu = dz.sum(axis=0)
    dlogvar = np.zeros((B, Z))
    doff = np.zeros((B, Z * (Z - 1) // 2))
    n = 0
    for i in range(Z):
        for j in range(i + 1):
            g = (dz[:, :, i] * eps[:, :, j]).sum(axis=0)      # dL/dL_ij, (B,)
            if i == j:
                dlogvar[:, i] = g * 0.5 * np.exp(0.5 * logvar[:, i])
            else:
                doff[:, n] = g
                n += 1
    return dmu, dlogvar, doff
