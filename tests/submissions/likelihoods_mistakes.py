"""Corpus submission: Bernoulli sign flipped, Gaussian without 1/c, learned without -1/2"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

def _sigmoid(a):
    return 0.5 + 0.5 * np.tanh(0.5 * a)


def bernoulli_log_prob(x, logits):
    l = logits
    return -np.sum(np.maximum(l, 0) - l * x + np.log1p(np.exp(-np.abs(l))), axis=-1)


def bernoulli_log_prob_grad(x, logits):
    return _sigmoid(logits) - x


def gaussian_log_prob(x, mean, c):
    d = x - mean
    return -0.5 * np.sum(d * d, axis=-1) / c - 0.5 * mean.shape[-1] * np.log(2 * np.pi * c)


def gaussian_log_prob_grad(x, mean, c):
    return x - mean


def gaussian_learned_log_prob(x, mean, logvar):
    d = x - mean
    return -0.5 * np.sum(np.log(2 * np.pi) + logvar + d * d * np.exp(-logvar), axis=-1)


def gaussian_learned_log_prob_grad(x, mean, logvar):
    d = x - mean
    r = d * np.exp(-logvar)
    return r, 0.5 * d * r
