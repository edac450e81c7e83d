"""Preprocessing: pixels to grey levels, fixed and dynamic binarization, splits, minibatches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .._validate import int_in_range, positive_int


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """Map uint8 pixels 0..255 to float32 grey levels in [0, 1] (divide by 255).

    images: uint8 array of any shape. Returns: float32 array of the same shape.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be a uint8 array, got dtype {images.dtype}")
    out = images.astype(np.float32)
    np.divide(out, np.float32(255.0), out=out)  # in place: the full MNIST train set is 188 MB
    return out


def _check_grey(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        hint = " (use scale_pixels first)" if x.dtype == np.uint8 else ""
        raise TypeError(f"{name} must be a float array of grey levels in [0, 1], "
                        f"got dtype {x.dtype}{hint}")
    if x.size and (np.isnan(x).any() or x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(f"{name} must contain grey levels in [0, 1]")
    return x


def _bernoulli(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # float32 uniforms for float32 input: half the memory and time of float64
    u_dtype = np.float32 if x.dtype == np.float32 else np.float64
    return (rng.random(x.shape, dtype=u_dtype) < x).astype(x.dtype)


def binarize_fixed(x: np.ndarray, seed=0) -> np.ndarray:
    """Binarize grey levels once, with a seeded Bernoulli draw.

    Each pixel becomes 1 with probability equal to its grey level. The draw
    uses ``np.random.default_rng(seed)``, so the same ``x`` and ``seed`` give the
    same result on every call (a "fixed" or "static" binarization).

    x: float array (any shape) with values in [0, 1].
    seed: int or sequence of ints.
    Returns: array of x's shape and dtype with values in {0, 1}.
    """
    x = _check_grey(x)
    rng = np.random.default_rng(seed)
    return _bernoulli(x, rng)


def binarize_dynamic(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw a fresh Bernoulli binarization of grey levels.

    Dynamic binarization: the trainer calls this on every minibatch, so each
    time an image is seen it gets a new random binary version whose mean is the
    grey image. This acts as a regulariser and is the usual choice for VAEs on
    grey-level MNIST with a Bernoulli decoder.

    x: float array (any shape) with values in [0, 1].
    rng: np.random.Generator (advanced by the call).
    Returns: array of x's shape and dtype with values in {0, 1}.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    x = _check_grey(x)
    return _bernoulli(x, rng)


def train_val_indices(n: int, val_size: int, seed=0):
    """Split ``range(n)`` into disjoint train and validation index sets.

    A random permutation from ``np.random.default_rng(seed)`` picks the
    ``val_size`` validation indices; the rest are the training indices. Both
    are returned sorted, so the original order is kept within each part.

    Returns: (train_idx int64 (n - val_size,), val_idx int64 (val_size,)).
    """
    n = positive_int("n", n)
    val_size = int_in_range("val_size", val_size, 1, n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def iterate_minibatches(x: np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
                        shuffle: bool = True, drop_last: bool = False,
                        return_indices: bool = False) -> Iterator[np.ndarray]:
    """Yield one epoch of minibatches of the rows of ``x``.

    With ``shuffle`` the rows are visited in the order of ``rng.permutation``
    (``rng`` required); otherwise in order 0..N-1. Every row appears exactly
    once per epoch, except that ``drop_last`` skips a final batch smaller than
    ``batch_size``.

    x: array (N, ...) or an int N (then indices are yielded).
    Yields: x[idx] of shape (b, ...) with b <= batch_size, or with
    ``return_indices`` (or an int ``x``) the int64 index arrays idx (b,).
    """
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        n, return_indices = int(x), True
        if n < 0:
            raise ValueError(f"x as a count must be >= 0, got {n}")
    else:
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("x must be an array with a leading batch axis or an int count")
        n = x.shape[0]
    batch_size = positive_int("batch_size", batch_size)
    if shuffle:
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy.random.Generator when shuffle=True, "
                            f"got {type(rng).__name__}")
        order = rng.permutation(n)
    else:
        order = np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if drop_last and len(idx) < batch_size:
            break
        yield idx if return_indices else x[idx]
