"""Corpus submission: does not parse"""
import numpy as np

def kl_normal_std_grad(mu, logvar:
    return mu
