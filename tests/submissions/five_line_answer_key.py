"""Corpus submission: the five-line answer key of the issue (every exercise from numpyvae)"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
from numpyvae.layers import *
from numpyvae.reparam import *
from numpyvae.kl import *
from numpyvae.likelihoods import *
from numpyvae.model import VAE
