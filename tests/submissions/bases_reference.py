"""Corpus submission: subclasses the reference and calls type(self).__bases__[0].backward"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np
import numpyvae.layers


class ReLU(numpyvae.layers.ReLU):
    def backward(self, dy):
        return type(self).__bases__[0].backward(self, dy)
