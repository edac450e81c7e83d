"""Corpus submission: calls the reference through an alias"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np
import numpyvae.kl as _k
from numpyvae.kl import kl_normal_std_grad as _g


def kl_normal_std(mu, logvar):
    return _k.kl_normal_std(mu, logvar)


def kl_normal_std_grad(mu, logvar):
    return _g(mu, logvar)
