"""Corpus submission: correct IWAE backward (a stable softmax over k)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def iwae_bound_backward(dbound, log_w):
    w = np.exp(log_w - log_w.max(axis=0, keepdims=True))
    return dbound[None, :] * w / w.sum(axis=0, keepdims=True)
