"""Corpus submission (a folder: the file renamed by a download, in a subfolder): correct ReLU"""
# ruff: noqa  (a corpus submission: its mistakes are the point)
import numpy as np

class ReLU:
    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return dy * (self.y > 0)
