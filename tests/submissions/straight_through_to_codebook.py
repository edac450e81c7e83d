"""Corpus submission: VQ-VAE backward copying the decoder's gradient to the codebook"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def quantize_backward(dz_q, z_e, codebook, beta):
    B = z_e.shape[0]
    d2 = ((z_e[..., None, :] - codebook) ** 2).sum(axis=-1)
    idx = d2.argmin(axis=-1).reshape(-1)
    z_q = codebook[d2.argmin(axis=-1)]
    dz_e = 2 * beta / B * (z_e - z_q)
    dcodebook = np.zeros_like(codebook)
    np.add.at(dcodebook, idx, (dz_q + 2 / B * (z_q - z_e)).reshape(-1, codebook.shape[1]))
    return dz_e, dcodebook
