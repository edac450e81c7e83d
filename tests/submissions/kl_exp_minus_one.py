"""Corpus submission: correct KL gradient written with exp"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

def kl_normal_std(mu, logvar):
    return 0.5 * np.sum(mu * mu + np.expm1(logvar) - logvar, axis=-1)


def kl_normal_std_grad(mu, logvar):
    return mu + 0.0, (np.exp(logvar) - 1) / 2
