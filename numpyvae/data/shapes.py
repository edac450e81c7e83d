"""Sprites with known factors, drawn in NumPy from a seed: the dSprites grid without a download.

Five factors, as Matthey et al.'s dSprites defines them (there on a 64x64 canvas):

  shape     3 values: square, ellipse, heart
  scale     6 values, evenly from 0.5 to 1
  rotation 40 values, evenly over [0, 2 pi)
  x, y     32 values each, evenly over [0, 1] (the sprite's centre, kept inside the canvas)

737 280 combinations. An image is binary: a pixel is 1 when its centre falls inside the
rotated, scaled shape. As in dSprites, the square repeats itself every quarter turn and the
ellipse every half turn, so those rotations cannot be told apart from the image: no model can
recover the rotation factor fully (note 16 names this among the metrics' failures).
"""
from __future__ import annotations

import numpy as np

from .._validate import int_in_range, positive_int

__all__ = ["FACTOR_NAMES", "FACTOR_SIZES", "SHAPE_NAMES", "factor_values", "sample_factors",
           "render", "make_shapes", "load_shapes"]

FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")

_HALF = 0.16        # half-width of a scale-1 sprite, as a fraction of the canvas
_MARGIN = 0.2       # centres run over [_MARGIN, 1 - _MARGIN] of the canvas


def factor_values(factors):
    """Factor indices (N, 5) -> their values: shape index, scale, angle (radians), x, y in [0, 1]."""
    f = np.asarray(factors)
    scale = 0.5 + 0.5 * f[:, 1] / (FACTOR_SIZES[1] - 1)
    angle = 2 * np.pi * f[:, 2] / FACTOR_SIZES[2]
    x = f[:, 3] / (FACTOR_SIZES[3] - 1)
    y = f[:, 4] / (FACTOR_SIZES[4] - 1)
    return f[:, 0], scale, angle, x, y


def sample_factors(n, rng):
    """n factor-index rows (n, 5), each factor uniform over its values."""
    n = positive_int("n", n)
    return np.stack([rng.integers(k, size=n) for k in FACTOR_SIZES], axis=1)


def _inside(shape, u, v):
    """Membership in the unit sprite of each kind, in the sprite's own coordinates."""
    square = (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    ellipse = u * u + (v / 0.5) ** 2 <= 1.0
    hu, hv = 1.1 * u, 1.1 * v + 0.15          # the heart curve (x^2 + y^2 - 1)^3 <= x^2 y^3, upright
    heart = (hu * hu + hv * hv - 1) ** 3 <= hu * hu * hv ** 3
    return np.where(shape == 0, square, np.where(shape == 1, ellipse, heart))


def render(factors, size=32, chunk=2048):
    """Draw the sprites of factor-index rows (N, 5) -> float32 images (N, size * size) in {0, 1}.

    Rows are images read top to bottom; y = 0 is the top, x = 0 the left.
    """
    size = int_in_range("size", size, 8, 256)
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != 5:
        raise ValueError(f"factors must have shape (N, 5), got {factors.shape}")
    if np.any(factors < 0) or np.any(factors >= np.array(FACTOR_SIZES)):
        raise ValueError(f"factors must hold indices below {FACTOR_SIZES} per column")
    shape, scale, angle, x, y = factor_values(factors)
    grid = (np.arange(size) + 0.5) / size
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    out = np.empty((len(factors), size * size), np.float32)
    for s in range(0, len(factors), chunk):
        sl = slice(s, s + chunk)
        cx = (_MARGIN + (1 - 2 * _MARGIN) * x[sl])[:, None, None]
        cy = (_MARGIN + (1 - 2 * _MARGIN) * y[sl])[:, None, None]
        r = (_HALF * scale[sl])[:, None, None]
        c, sn = np.cos(angle[sl])[:, None, None], np.sin(angle[sl])[:, None, None]
        dx, dy = gx - cx, cy - gy                        # dy upwards, so a heart stands upright
        u = (c * dx + sn * dy) / r                        # rotate the canvas by -angle
        v = (-sn * dx + c * dy) / r
        out[sl] = _inside(shape[sl, None, None], u, v).reshape(-1, size * size)
    return out


def make_shapes(n, seed=0, size=32):
    """n random sprites: (images float32 (n, size^2), factor indices int64 (n, 5))."""
    rng = np.random.default_rng(seed)
    factors = sample_factors(n, rng)
    return render(factors, size), factors


def load_shapes(seed=0, n_train=20000, n_val=2000, n_test=2000, size=32):
    """Three disjoint draws of sprites from ``seed``: {"x_train", "f_train", "x_val", ...}."""
    out = {}
    for i, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        out[f"x_{split}"], out[f"f_{split}"] = make_shapes(n, seed=(seed, i), size=size)
    return out
