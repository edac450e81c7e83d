"""Small 2-D toy data sets generated from a seed: two moons, a ring of Gaussians, a pinwheel.

Handy for looking at a latent space or a density directly (D = 2, labels = component)."""

from __future__ import annotations

import numpy as np

from .._validate import int_in_range, positive_int


def make_two_moons(n: int, seed=0, noise: float = 0.1):
    """Sample two interleaved half circles in the plane.

    Moon 0 is the upper arc of the unit circle; moon 1 is the lower arc
    shifted right by 1 and up by 0.5. Gaussian noise of std ``noise`` is added.
    ``seed``: int or np.random.Generator.

    Returns: (x float32 (n, 2), labels uint8 (n,) in {0, 1}).
    """
    n = positive_int("n", n)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    t = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(labels[:, None] == 0, upper, lower)
    x = x + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), labels.astype(np.uint8)


def make_gaussian_mixture(n: int, seed=0, n_components: int = 8, radius: float = 2.0,
                          std: float = 0.2):
    """Sample an equal-weight mixture of isotropic Gaussians centred on a circle.

    Component k has mean radius * (cos 2 pi k/K, sin 2 pi k/K) and standard
    deviation ``std`` on each axis. ``seed``: int or np.random.Generator.

    Returns: (x float32 (n, 2), labels uint8 (n,) = component index 0..K-1).
    """
    n = positive_int("n", n)
    n_components = int_in_range("n_components", n_components, 1, 255)   # labels are uint8
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_components, size=n)
    angle = 2.0 * np.pi * labels / n_components
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x = centres + std * rng.standard_normal((n, 2))
    return x.astype(np.float32), labels.astype(np.uint8)


def make_pinwheel(n: int, seed=0, n_arms: int = 5, radial_std: float = 0.3,
                  tangential_std: float = 0.05, rate: float = 0.25):
    """Sample a pinwheel: ``n_arms`` elongated blobs bent into spiral arms.

    Each point starts at (1 + radial_std * e1, tangential_std * e2) with e ~ N(0, I),
    and is rotated by its arm's base angle plus ``rate * exp(radial part)``, so
    points further out are bent more. ``seed``: int or np.random.Generator.

    Returns: (x float32 (n, 2), labels uint8 (n,) = arm index 0..n_arms-1).
    """
    n = positive_int("n", n)
    n_arms = int_in_range("n_arms", n_arms, 1, 255)   # labels are uint8
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_arms, size=n)
    pts = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    pts[:, 0] += 1.0
    angle = 2.0 * np.pi * labels / n_arms + rate * np.exp(pts[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    x = np.stack([c * pts[:, 0] - s * pts[:, 1], s * pts[:, 0] + c * pts[:, 1]], axis=1)
    return x.astype(np.float32), labels.astype(np.uint8)


TOY_MAKERS = {
    "two-moons": make_two_moons,
    "gaussian-mixture": make_gaussian_mixture,
    "pinwheel": make_pinwheel,
}
