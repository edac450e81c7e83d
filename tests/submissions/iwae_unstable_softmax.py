"""Corpus submission: IWAE backward with a softmax that underflows (no max subtracted)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


def iwae_bound_backward(dbound, log_w):
    w = np.exp(log_w)
    return dbound * w / w.sum(axis=0)
