"""``load_dataset``: every data set by name, as flattened float32 rows split three ways.

Three kinds: ``"mnist-embedded"`` (the default, shipped in this folder), real data sets read
from a directory (``data_dir`` or ``$NUMPYVAE_DATA``), and generated 2-D toy sets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .formats import (
    load_binarized_mnist,
    load_embedded_mnist,
    load_fashion_mnist,
    load_frey,
    load_mnist,
)
from .preprocess import binarize_fixed, scale_pixels, train_val_indices
from .shapes import load_shapes
from .toy import TOY_MAKERS

_TOY_TEST_SIZE = 1000
_TOY_TRAIN_SIZE = 8000

#: Names accepted by :func:`load_dataset`, each with a one-line description.
DATASETS: dict[str, str] = {
    "mnist-embedded": "MNIST t10k (shipped with the package), split 9000 train / 1000 val, no test",
    "mnist": "MNIST from data_dir: 60k train split 50k/10k train/val, 10k test",
    "fashion-mnist": "Fashion-MNIST from data_dir: 50k/10k train/val, 10k test",
    "binarized-mnist": "Larochelle's fixed binarization from data_dir: 50k/10k/10k, no labels",
    "frey": "Frey Face from data_dir: 1965 faces of 28x20, split 1765/200, no labels, no test",
    "two-moons": "2-D toy: two interleaved half circles (labels = moon)",
    "gaussian-mixture": "2-D toy: 8 Gaussians on a circle (labels = component)",
    "pinwheel": "2-D toy: 5 curved arms (labels = arm)",
    "shapes": "sprites with known factors (shape, scale, rotation, x, y), 32x32 binary, drawn from "
              "the seed: 20000/2000/2000, labels = shape",
}


@dataclass
class Dataset:
    """A data set ready for training: flattened float32 rows split three ways.

    x_train (N_train, D), x_val (N_val, D), x_test (N_test, D) or None: float32.
    For image sets values are grey levels in [0, 1] (or {0, 1} after a fixed
    binarization); for the 2-D toy sets they are raw coordinates (D = 2).
    y_*: uint8 labels (N_*,), or None when the data set has no labels
    (binarized-mnist, frey) or no test split (mnist-embedded, frey).
    image_shape: (H, W) to reshape a row into an image, None for toy sets.
    binarize: None, "fixed" (already applied) or "dynamic" (the trainer must
    call :func:`binarize_dynamic` on every minibatch).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    image_shape: tuple[int, int] | None
    binarize: str | None = None
    seed: int = 0
    description: str = ""

    @property
    def x_dim(self) -> int:
        """Number of columns D of every x array."""
        return int(self.x_train.shape[1])

    @property
    def has_test(self) -> bool:
        """True when a held-out test split exists (x_test is not None)."""
        return self.x_test is not None


def _flat(images: np.ndarray) -> np.ndarray:
    return scale_pixels(images).reshape(len(images), -1)


def load_dataset(name: str = "mnist-embedded", data_dir: str | os.PathLike | None = None,
                 seed: int = 0, binarize: str | None = None,
                 val_size: int | None = None, test: bool = True) -> Dataset:
    """Load a data set by name as a :class:`Dataset` of flattened float32 rows.

    name: one of :data:`DATASETS`:
      * "mnist-embedded" (default, no files needed): the packaged MNIST t10k
        images, split by ``seed`` into 9000 train / 1000 val. There is no
        separate test split (x_test = y_test = None): these 10k images are
        MNIST's own test set, so numbers on them are not comparable with
        published MNIST test results.
      * "mnist", "fashion-mnist": the 60k training images split by ``seed``
        into 50000 train / 10000 val; test = the official 10k test images.
      * "binarized-mnist": Larochelle's official 50k/10k/10k split, already
        binary, no labels (``binarize`` and ``val_size`` must stay None).
      * "frey": 1965 faces (D = 560, image_shape (28, 20)), split by ``seed``
        into 1765 train / 200 val, no test split, no labels.
      * "shapes": binary 32x32 sprites drawn from ``seed`` (numpyvae.data.shapes), 20000 train /
        2000 val / 2000 test; y = the shape; the other factors from ``load_shapes(seed)``.
      * "two-moons", "gaussian-mixture", "pinwheel": generated from ``seed``:
        8000 train, ``val_size`` (1000) val and 1000 test points, D = 2.
    data_dir: directory with the real data (else ``$NUMPYVAE_DATA``), see
      :func:`load_mnist`; ignored by the embedded and toy sets.
    seed: the data seed; fixes the train/val split, the fixed binarization
      and the toy samples (keep it constant to compare runs on the same val set).
    binarize: None (grey levels), "fixed" (one seeded Bernoulli draw per split,
      applied here) or "dynamic" (recorded only; redraw per minibatch with
      :func:`binarize_dynamic`). Image sets only.
    val_size: size of the validation split (default per data set, see above).
    test: read the official test split of "mnist" / "fashion-mnist" (default True). With
      False the t10k files are not opened (they need not exist), x_test = y_test = None and
      the description says so; training never uses them.
    Returns: Dataset with x_* float32 (N, D) and y_* uint8 (N,) or None.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")
    if binarize not in (None, "fixed", "dynamic"):
        raise ValueError(f"binarize must be None, 'fixed' or 'dynamic', got {binarize!r}")
    desc = DATASETS[name]

    if name in TOY_MAKERS:
        if binarize is not None:
            raise ValueError(f"binarize must be None for the 2-D toy set {name!r}")
        n_val = 1000 if val_size is None else val_size
        if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or n_val < 1:
            raise ValueError(f"val_size must be a positive integer, got {val_size!r}")
        x, y = TOY_MAKERS[name](_TOY_TRAIN_SIZE + n_val + _TOY_TEST_SIZE, seed=seed)
        a, b = _TOY_TRAIN_SIZE, _TOY_TRAIN_SIZE + n_val
        return Dataset(name, x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], None,
                       None, seed, desc)

    if name == "shapes":
        if binarize is not None:
            raise ValueError("binarize must be None for 'shapes' (already binary)")
        if val_size is not None:
            raise ValueError(f"'shapes' has a fixed 2000-image validation split; val_size must be None, "
                             f"got {val_size!r}")
        d = load_shapes(seed)
        return Dataset(name, d["x_train"], d["f_train"][:, 0].astype(np.uint8), d["x_val"],
                       d["f_val"][:, 0].astype(np.uint8), d["x_test"], d["f_test"][:, 0].astype(np.uint8),
                       (32, 32), None, seed, desc)

    if name == "binarized-mnist":
        if binarize is not None:
            raise ValueError("binarize must be None for 'binarized-mnist' (already binary)")
        if val_size not in (None, 10000):
            raise ValueError(f"'binarized-mnist' has a fixed 10000-image validation split; "
                             f"val_size must be None, got {val_size!r}")
        tr, va, te = (a.astype(np.float32) for a in load_binarized_mnist(data_dir))
        return Dataset(name, tr, None, va, None, te, None, (28, 28), None, seed, desc)

    # grey-level image sets: pick the pool that is split into train/val
    x_test = y_test = None
    labels: np.ndarray | None
    if name == "mnist-embedded":
        images, labels = load_embedded_mnist()
        default_val = 1000
    elif name in ("mnist", "fashion-mnist"):
        loader = load_mnist if name == "mnist" else load_fashion_mnist
        images, labels = loader(data_dir, "train")
        if test:
            test_images, y_test = loader(data_dir, "test")
            x_test = _flat(test_images)
        else:
            desc += " (test split not loaded: test=False)"
        default_val = 10000
    else:  # frey
        images, labels = load_frey(data_dir), None
        default_val = 200
    image_shape = tuple(images.shape[1:])
    train_idx, val_idx = train_val_indices(len(images), default_val if val_size is None else val_size,
                                           seed)
    # split the uint8 images, then scale each part: scaling first held the float32 copy of all
    # 60,000 MNIST images (188 MB) beside its two parts, 376 MB at once
    x_train, x_val = _flat(images[train_idx]), _flat(images[val_idx])
    y_train = labels[train_idx] if labels is not None else None
    y_val = labels[val_idx] if labels is not None else None

    if binarize == "fixed":
        # separate seeded streams per split, so each split's draw is reproducible on its own
        x_train = binarize_fixed(x_train, (seed, 1))
        x_val = binarize_fixed(x_val, (seed, 2))
        if x_test is not None:
            x_test = binarize_fixed(x_test, (seed, 3))
    return Dataset(name, x_train, y_train, x_val, y_val, x_test, y_test, image_shape,
                   binarize, seed, desc)
