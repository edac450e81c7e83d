"""Argument checks shared by the modules: each error names the argument and what was expected."""
from __future__ import annotations

import numbers

import numpy as np


def _is_int(v) -> bool:
    # bool is an Integral too, but True is no size
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def positive_int(name, v) -> int:
    """``v`` as an int >= 1; else "``name`` must be a positive integer"."""
    if type(v) is int and v >= 1:      # the usual case, without the slower ABC check below
        return v
    if not _is_int(v) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def int_in_range(name, v, lo, hi) -> int:
    """``v`` as an int with lo <= v <= hi; else "``name`` must be an integer in lo..hi"."""
    if not _is_int(v) or not lo <= v <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
    return int(v)


def int_sizes(name, v) -> tuple[int, ...]:
    """One positive int or a sequence of them (layer sizes) as a tuple of ints."""
    if _is_int(v):
        v = (v,)
    try:
        v = tuple(v)
    except TypeError:
        raise ValueError(f"{name} must be a tuple of positive integers, got {v!r}") from None
    return tuple(positive_int(f"{name} entries", h) for h in v)


def float_dtype(dtype) -> np.dtype:
    """float32 or float64 as a dtype."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def seed(v) -> int:
    """A non-negative int seed."""
    if not _is_int(v) or v < 0:
        raise ValueError(f"seed must be a non-negative integer, got {v!r}")
    return int(v)


def as_rng(rng, default=None) -> np.random.Generator:
    """None -> ``default`` (or a fresh generator); an int -> a generator seeded with it."""
    if rng is None:
        return default if default is not None else np.random.default_rng()
    if _is_int(rng):
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def vae_and_x(vae, x):
    """Check that ``vae`` looks like a numpyvae.VAE and ``x`` is (B, vae.x_dim) with B >= 1."""
    if not hasattr(vae, "encode") or not hasattr(vae, "log_px_given_z"):
        raise TypeError(f"vae must be a numpyvae.VAE, got {type(vae).__name__}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != vae.x_dim or x.shape[0] < 1:
        raise ValueError(f"x must have shape (B, {vae.x_dim}) with B >= 1, got {x.shape}")
    return x
