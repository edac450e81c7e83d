"""Corpus submission: imports the answer key"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np
from numpyvae.layers import *  # noqa
from numpyvae.kl import *  # noqa
