"""Corpus submission: assigns the reference method into its own class"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np


class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y


ReLU.backward = getattr(__import__('numpyvae.layers', fromlist=['ReLU']), 'ReLU').backward
