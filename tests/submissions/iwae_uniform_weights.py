"""Corpus submission: IWAE backward with the ELBO's uniform 1/K instead of the softmax"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def iwae_bound_backward(dbound, log_w):
    K = log_w.shape[0]
    return np.ones_like(log_w) / K * dbound
