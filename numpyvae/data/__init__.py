"""The data wing: where the numbers come from before they reach the encoder.

- ``formats``: readers of the on-disk formats (IDX, Frey's .mat, binarized MNIST .npz) and the
  MNIST test set shipped in this folder (``t10k-*.gz``, see LICENSE-MNIST.txt);
- ``toy``: 2-D toy sets generated from a seed;
- ``preprocess``: grey levels, binarization, train/val splits, minibatches;
- ``load``: ``load_dataset(name)``, every data set by name.

Loading data is bookkeeping, not mathematics: this wing carries no ``Derivation:`` lines.
"""

from .formats import (EMBEDDED_MD5, load_binarized_mnist, load_embedded_mnist, load_fashion_mnist,
                      load_frey, load_mnist, read_frey_mat, read_idx)
from .load import DATASETS, Dataset, load_dataset
from .preprocess import (binarize_dynamic, binarize_fixed, iterate_minibatches, scale_pixels,
                         train_val_indices)
from .toy import make_gaussian_mixture, make_pinwheel, make_two_moons

__all__ = ["DATASETS", "EMBEDDED_MD5", "Dataset", "read_idx", "read_frey_mat", "load_mnist",
           "load_fashion_mnist", "load_embedded_mnist", "load_binarized_mnist", "load_frey",
           "make_two_moons", "make_gaussian_mixture", "make_pinwheel", "train_val_indices",
           "scale_pixels", "binarize_fixed", "binarize_dynamic", "iterate_minibatches",
           "load_dataset"]
