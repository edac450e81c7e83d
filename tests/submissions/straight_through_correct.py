"""Corpus submission: correct VQ-VAE quantizer backward (a loop over the codes)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def quantize_backward(dz_q, z_e, codebook, beta):
    B, M, d = z_e.shape
    dz_e = dz_q.copy()                       # straight-through: copy onto z_e
    dcodebook = np.zeros_like(codebook)
    for b in range(B):
        for m in range(M):
            j = np.argmin(((codebook - z_e[b, m]) ** 2).sum(axis=1))
            e = codebook[j]
            dz_e[b, m] += 2 * beta / B * (z_e[b, m] - e)       # commitment
            dcodebook[j] += 2 / B * (e - z_e[b, m])            # codebook term
    return dz_e, dcodebook
