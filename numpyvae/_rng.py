"""Named random streams from one seed: every use of randomness draws from its own stream.

``streams(seed)`` spawns the root ``SeedSequence(seed)`` once into a fixed list of children,
one per named use. The model's initial weights, its sampling noise, the trainer's shuffles,
the dynamic binarization and the validation noise are then independent, although one
``--seed`` sets them all. The order of ``STREAMS`` is part of the reproducibility contract:
a new stream is appended, never inserted, so existing streams keep their bits.
"""
from __future__ import annotations

import numpy as np

STREAMS = ("init", "sample", "batch", "binarize", "val_eps", "val_binarize", "iw_eps")


def streams(seed: int) -> dict:
    """{name: SeedSequence} for every name in ``STREAMS``, spawned once from ``seed``."""
    return dict(zip(STREAMS, np.random.SeedSequence(seed).spawn(len(STREAMS))))


def generator(seed: int, name: str) -> np.random.Generator:
    """A fresh ``Generator`` on the stream ``name`` of ``seed``."""
    if name not in STREAMS:
        raise ValueError(f"name must be one of {STREAMS}, got {name!r}")
    return np.random.default_rng(streams(seed)[name])
