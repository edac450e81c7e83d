"""Data sets for numpyvae: readers, loaders, binarization and minibatches.

Nothing in this module needs the network. Three kinds of data are offered:

* ``"mnist-embedded"`` (the default): the 10,000 MNIST test images ship inside
  the package (``numpyvae/data/``), so a VAE can be trained on real digits
  straight after installation.
* Real data sets read from a directory you supply (argument ``data_dir`` or
  the environment variable ``NUMPYVAE_DATA``): full MNIST, Fashion-MNIST,
  Larochelle's binarized MNIST and the Frey Face images.
* Small 2-D toy sets generated from a seed (two moons, a ring of Gaussians,
  a pinwheel), handy for looking at a latent space or a density directly.

A data directory may hold the files directly or in per-data-set subfolders
(``mnist/``, ``fashion-mnist/``, ``frey/``, ``binarized-mnist/``), which is the
layout of the project's shared test data.

Loading data is bookkeeping, not mathematics, so the functions here carry no
``Derivation:`` line; the module-level flag below tells the traceability test.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

__derivation_exempt__ = True

__all__ = [
    "DATASETS",
    "EMBEDDED_MD5",
    "Dataset",
    "read_idx",
    "read_frey_mat",
    "load_mnist",
    "load_fashion_mnist",
    "load_embedded_mnist",
    "load_binarized_mnist",
    "load_frey",
    "make_two_moons",
    "make_gaussian_mixture",
    "make_pinwheel",
    "train_val_indices",
    "scale_pixels",
    "binarize_fixed",
    "binarize_dynamic",
    "iterate_minibatches",
    "load_dataset",
]

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
}

#: Published md5 checksums of the two gzip files stored in numpyvae/data/.
EMBEDDED_MD5: dict[str, str] = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

_ENV_VAR = "NUMPYVAE_DATA"
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes, the only one we read
_IDX_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32",
                   0x0D: "float32", 0x0E: "float64"}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_FREY_FILE = "frey_rawface.mat"
_FREY_SHAPE = (28, 20)
_FREY_COUNT = 1965
_BINARIZED_FILE = "binarized_mnist.npz"

_TOY_TEST_SIZE = 1000
_TOY_TRAIN_SIZE = 8000


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

def _describe_non_idx(raw: bytes) -> str | None:
    """Return a hint if ``raw`` looks like a web page or a Git LFS pointer."""
    head = raw[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<!doctype") or head.startswith(b"<html"):
        return ("it is an HTML page, not data (a failed or redirected download "
                "saved under the data file's name?)")
    if head.startswith(b"<"):
        return "it starts with '<' and looks like an HTML/XML page, not data"
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer file, not the data itself (run `git lfs pull`)"
    return None


def _check_file(path: str | os.PathLike) -> Path:
    """Turn ``path`` into a Path that exists and is a regular file."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if not p.is_file():
        raise ValueError(f"{p}: expected a file, found a directory or special file")
    return p


def _gunzip(raw: bytes, name: str) -> bytes:
    """Decompress gzip bytes, turning every failure into a ValueError naming ``name``."""
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise ValueError(f"{name}: gzip stream is truncated (the file ends early: {exc})") from exc
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{name}: gzip stream is corrupt ({exc})") from exc


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse the bytes of an IDX file (gzip or raw) into a uint8 array."""
    if len(raw) == 0:
        raise ValueError(f"{name}: file is empty")
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip(raw, name)
    hint = _describe_non_idx(raw)
    if hint is not None:
        raise ValueError(f"{name}: not an IDX file: {hint}")
    if len(raw) < 4:
        raise ValueError(f"{name}: truncated IDX header ({len(raw)} bytes, need at least 4)")
    zero1, zero2, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero1 != 0 or zero2 != 0 or ndim == 0 or type_code not in _IDX_TYPE_NAMES:
        raise ValueError(
            f"{name}: bad IDX magic number 0x{magic:08x} ({magic}); expected 2051 "
            f"(0x00000803, images) or 2049 (0x00000801, labels)")
    if type_code != _IDX_UBYTE:
        raise ValueError(
            f"{name}: IDX data type {_IDX_TYPE_NAMES[type_code]} (code 0x{type_code:02x}) "
            f"is not supported; only uint8 (0x08) is read")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header_len} bytes, "
            f"file has {len(raw)}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(raw) < expected:
        raise ValueError(
            f"{name}: truncated IDX data: header says shape {dims} "
            f"({expected - header_len} bytes of data) but only {len(raw) - header_len} "
            f"bytes follow the header")
    if len(raw) > expected:
        raise ValueError(
            f"{name}: {len(raw) - expected} unexpected trailing bytes after the IDX data "
            f"of shape {dims}")
    # copy so the result is writeable and does not pin the decompressed buffer
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST format), gzip-compressed or raw, into a uint8 array.

    Compression is detected from the first two bytes (1f 8b), not from the name.
    The header must be an unsigned-byte IDX magic number (2051 = 0x00000803 for
    images, 2049 = 0x00000801 for labels, or any 0x000008nn with nn dimensions)
    and the data length must match the dimensions exactly.

    Returns: uint8 array with the shape from the header, e.g. images (N, 28, 28),
    labels (N,).
    Raises: FileNotFoundError if ``path`` does not exist; ValueError (message
    names the file) for an empty, truncated or over-long file, a bad magic
    number, an unsupported data type, a corrupt gzip stream, or an HTML page
    / Git LFS pointer saved in place of the data.
    """
    p = _check_file(path)
    return _parse_idx(p.read_bytes(), str(p))


# --------------------------------------------------------------------------
# Directory resolution and real-data loaders
# --------------------------------------------------------------------------

def _base_dir(data_dir: str | os.PathLike | None, what: str) -> Path:
    """The directory given as argument, else $NUMPYVAE_DATA; it must exist."""
    if data_dir is None:
        env = os.environ.get(_ENV_VAR)
        if not env:
            raise FileNotFoundError(
                f"no data directory for {what}: pass data_dir=... or set the environment "
                f"variable {_ENV_VAR} (load_dataset('mnist-embedded') needs no files)")
        data_dir, source = env, f"${_ENV_VAR}"
    elif isinstance(data_dir, (str, os.PathLike)):
        source = "data_dir"
    else:
        raise TypeError(f"data_dir must be a str, os.PathLike or None, got {type(data_dir).__name__}")
    base = Path(data_dir).expanduser()
    if base.exists() and not base.is_dir():
        raise ValueError(f"data directory for {what} is not a directory: {base} (from {source})")
    if not base.is_dir():
        raise FileNotFoundError(f"data directory for {what} not found: {base} (from {source})")
    return base


def _find_files(data_dir, subdirs: Sequence[str], stems: Sequence[str], what: str,
                allow_plain: bool = True) -> list[Path]:
    """Locate files named in ``stems`` in ``data_dir/<subdir>`` or ``data_dir`` itself.

    For IDX files (``allow_plain``) each stem may be present as ``stem.gz`` or as
    the uncompressed ``stem``. Returns the paths in the order of ``stems``.
    """
    base = _base_dir(data_dir, what)
    candidates = [base / s for s in subdirs if (base / s).is_dir()] + [base]
    for folder in candidates:
        found = []
        for stem in stems:
            names = [stem + ".gz", stem] if allow_plain else [stem]
            hit = next((folder / n for n in names if (folder / n).is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    looked = ", ".join(str(c) for c in candidates)
    wanted = ", ".join(s + ".gz" if allow_plain else s for s in stems)
    extra = " (the .gz suffix is optional)" if allow_plain else ""
    raise FileNotFoundError(f"{what} files not found: looked in {looked} for {wanted}{extra}")


def _load_idx_pair(data_dir, split: str, subdirs: Sequence[str], what: str):
    if split not in _IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    img_path, lab_path = _find_files(data_dir, subdirs, _IDX_FILES[split], f"{what} {split}")
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    _check_image_label_pair(images, labels, str(img_path), str(lab_path))
    return images, labels


def _check_image_label_pair(images: np.ndarray, labels: np.ndarray, img_name: str,
                            lab_name: str) -> None:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{img_name}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{lab_name}: expected labels of shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(
            f"{img_name} has {len(images)} images but {lab_name} has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lab_name}: labels must be 0-9, found {int(labels.max())}")


def load_mnist(data_dir: str | os.PathLike | None = None, split: str = "train"):
    """Load MNIST images and labels from IDX files in a directory.

    The directory is ``data_dir``, else ``$NUMPYVAE_DATA``; the four standard
    files (``train-images-idx3-ubyte.gz`` etc., gzip or not) may sit in it
    directly or in a ``mnist/`` subfolder.

    split: "train" (60000 images) or "test" (10000 images).
    Returns: (images uint8 (N, 28, 28) with 0 = background, labels uint8 (N,)).
    """
    return _load_idx_pair(data_dir, split, ("mnist", "MNIST"), "MNIST")


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, split: str = "train"):
    """Load Fashion-MNIST images and labels from IDX files in a directory.

    Same file names and layout as :func:`load_mnist`, with the subfolder
    ``fashion-mnist/`` (or ``fashion_mnist/``). Class 0 is T-shirt/top, ...,
    9 is ankle boot.

    split: "train" (60000 images) or "test" (10000 images).
    Returns: (images uint8 (N, 28, 28), labels uint8 (N,)).
    """
    return _load_idx_pair(data_dir, split, ("fashion-mnist", "fashion_mnist"), "Fashion-MNIST")


def load_embedded_mnist(verify: bool = True):
    """Load the MNIST test set (t10k) that ships inside the package.

    The two gzip files in ``numpyvae/data/`` are the published originals
    (see ``numpyvae/data/LICENSE-MNIST.txt``: Yann LeCun and Corinna Cortes,
    CC BY-SA 3.0). With ``verify`` their md5 is checked against
    :data:`EMBEDDED_MD5` first (a few milliseconds).

    Returns: (images uint8 (10000, 28, 28), labels uint8 (10000,)).
    """
    out = []
    for fname in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        resource = resources.files("numpyvae.data").joinpath(fname)
        try:
            raw = resource.read_bytes()
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"packaged data file numpyvae/data/{fname} is missing; the installation "
                f"is incomplete (package data not installed?)") from exc
        if verify:
            digest = hashlib.md5(raw).hexdigest()
            if digest != EMBEDDED_MD5[fname]:
                raise ValueError(
                    f"packaged data file numpyvae/data/{fname} is damaged: md5 {digest}, "
                    f"expected {EMBEDDED_MD5[fname]}")
        out.append(_parse_idx(raw, f"numpyvae/data/{fname}"))
    images, labels = out
    _check_image_label_pair(images, labels, "numpyvae/data/t10k-images", "numpyvae/data/t10k-labels")
    return images, labels


def load_binarized_mnist(data_dir: str | os.PathLike | None = None):
    """Load Larochelle's fixed binarization of MNIST from ``binarized_mnist.npz``.

    The file (in ``data_dir`` or its ``binarized-mnist/`` subfolder) holds the
    keys ``train``, ``valid``, ``test``, each row being 784 bits packed with
    ``np.packbits`` (98 bytes). There are no labels.

    Returns: (train (50000, 784), valid (10000, 784), test (10000, 784)),
    all uint8 with values in {0, 1}.
    """
    (path,) = _find_files(data_dir, ("binarized-mnist", "binarized_mnist"),
                          (_BINARIZED_FILE,), "binarized MNIST", allow_plain=False)
    try:
        with np.load(path, allow_pickle=False) as npz:
            packed = {k: npz[k] for k in ("train", "valid", "test")}
    except KeyError as exc:
        raise ValueError(f"{path}: expected arrays 'train', 'valid', 'test' ({exc})") from exc
    except (OSError, ValueError, zlib.error, EOFError) as exc:
        raise ValueError(f"{path}: cannot read as an .npz archive ({exc})") from exc
    out = []
    for key in ("train", "valid", "test"):
        arr = packed[key]
        if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 98:
            raise ValueError(
                f"{path}: array {key!r} should be packed bits uint8 (N, 98), "
                f"got {arr.dtype} {arr.shape}")
        out.append(np.unpackbits(arr, axis=1)[:, :784])
    return tuple(out)


def read_frey_mat(path: str | os.PathLike) -> np.ndarray:
    """Read ``frey_rawface.mat`` without scipy.

    The file is a MATLAB 5.0 MAT-file holding one uncompressed uint8 matrix
    ``ff`` of size 560 x 1965 (one 28x20 face per column, each face stored row
    by row). The header text, byte-order mark, element tags, dimensions and
    the total file size are all checked.

    Returns: uint8 array (1965, 28, 20), pixel values 8-238.
    """
    p = _check_file(path)
    raw = p.read_bytes()
    name = str(p)
    hint = _describe_non_idx(raw)
    if hint is not None:
        raise ValueError(f"{name}: not a MAT-file: {hint}")
    if not raw.startswith(b"MATLAB 5.0 MAT-file"):
        raise ValueError(f"{name}: header does not begin with 'MATLAB 5.0 MAT-file'")
    if len(raw) < 128 or raw[126:128] != b"IM":
        raise ValueError(f"{name}: missing the little-endian 'IM' marker at bytes 126-127 "
                         f"(truncated, or a big-endian file, which is not supported)")

    def u32(off: int) -> int:
        return int.from_bytes(raw[off:off + 4], "little")

    n_pixels = _FREY_COUNT * _FREY_SHAPE[0] * _FREY_SHAPE[1]
    data_off = 184  # 128 header + 8 matrix tag + 16 flags + 16 dims + 8 name + 8 data tag
    expected_size = data_off + n_pixels
    if len(raw) != expected_size:
        raise ValueError(f"{name}: file has {len(raw)} bytes, expected {expected_size} "
                         f"for the Frey Face matrix (truncated or a different file)")
    checks = [
        (u32(128) == 14, "first element is not an uncompressed matrix (miMATRIX)"),
        (u32(136) == 6 and u32(140) == 8 and raw[144] == 9,
         "array flags do not describe a uint8 matrix"),
        (u32(152) == 5 and u32(156) == 8, "dimensions element is not two int32 values"),
        ((u32(160), u32(164)) == (_FREY_SHAPE[0] * _FREY_SHAPE[1], _FREY_COUNT),
         f"matrix is {u32(160)} x {u32(164)}, expected 560 x 1965"),
        (u32(176) == 2 and u32(180) == n_pixels, "pixel data element is not 1100400 uint8 bytes"),
    ]
    for ok, what in checks:
        if not ok:
            raise ValueError(f"{name}: unexpected MAT-file layout: {what}")
    # column-major 560 x 1965: each run of 560 bytes is one face, row by row
    faces = np.frombuffer(raw, dtype=np.uint8, count=n_pixels, offset=data_off)
    return faces.reshape(_FREY_COUNT, *_FREY_SHAPE).copy()


def load_frey(data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Load the Frey Face images from ``frey_rawface.mat``.

    The file may sit in ``data_dir`` (else ``$NUMPYVAE_DATA``) or in its
    ``frey/`` subfolder. See :func:`read_frey_mat`.

    Returns: uint8 array (1965, 28, 20).
    """
    (path,) = _find_files(data_dir, ("frey",), (_FREY_FILE,), "Frey Face", allow_plain=False)
    return read_frey_mat(path)


# --------------------------------------------------------------------------
# Toy 2-D data sets
# --------------------------------------------------------------------------

def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def make_two_moons(n: int, seed=0, noise: float = 0.1):
    """Sample two interleaved half circles in the plane.

    Moon 0 is the upper arc of the unit circle; moon 1 is the lower arc
    shifted right by 1 and up by 0.5. Gaussian noise of std ``noise`` is added.
    ``seed``: int or np.random.Generator.

    Returns: (x float32 (n, 2), labels uint8 (n,) in {0, 1}).
    """
    n = _check_n(n)
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
    n = _check_n(n)
    if not 1 <= n_components <= 255:
        raise ValueError(f"n_components must be in 1..255, got {n_components}")
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
    n = _check_n(n)
    if not 1 <= n_arms <= 255:
        raise ValueError(f"n_arms must be in 1..255, got {n_arms}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_arms, size=n)
    pts = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    pts[:, 0] += 1.0
    angle = 2.0 * np.pi * labels / n_arms + rate * np.exp(pts[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    x = np.stack([c * pts[:, 0] - s * pts[:, 1], s * pts[:, 0] + c * pts[:, 1]], axis=1)
    return x.astype(np.float32), labels.astype(np.uint8)


_TOY_MAKERS = {
    "two-moons": make_two_moons,
    "gaussian-mixture": make_gaussian_mixture,
    "pinwheel": make_pinwheel,
}


# --------------------------------------------------------------------------
# Pixels, binarization, splits, minibatches
# --------------------------------------------------------------------------

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
    n = _check_n(n)
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)) \
            or not 0 < val_size < n:
        raise ValueError(f"val_size must be an integer in 1..{n - 1}, got {val_size!r}")
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
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


# --------------------------------------------------------------------------
# The Dataset container and load_dataset
# --------------------------------------------------------------------------

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
                 val_size: int | None = None) -> Dataset:
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
    Returns: Dataset with x_* float32 (N, D) and y_* uint8 (N,) or None.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")
    if binarize not in (None, "fixed", "dynamic"):
        raise ValueError(f"binarize must be None, 'fixed' or 'dynamic', got {binarize!r}")
    desc = DATASETS[name]

    if name in _TOY_MAKERS:
        if binarize is not None:
            raise ValueError(f"binarize must be None for the 2-D toy set {name!r}")
        n_val = 1000 if val_size is None else val_size
        if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or n_val < 1:
            raise ValueError(f"val_size must be a positive integer, got {val_size!r}")
        x, y = _TOY_MAKERS[name](_TOY_TRAIN_SIZE + n_val + _TOY_TEST_SIZE, seed=seed)
        a, b = _TOY_TRAIN_SIZE, _TOY_TRAIN_SIZE + n_val
        return Dataset(name, x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], None,
                       None, seed, desc)

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
        test_images, y_test = loader(data_dir, "test")
        x_test = _flat(test_images)
        default_val = 10000
    else:  # frey
        images, labels = load_frey(data_dir), None
        default_val = 200
    image_shape = tuple(images.shape[1:])
    x = _flat(images)
    train_idx, val_idx = train_val_indices(len(x), default_val if val_size is None else val_size,
                                           seed)
    x_train, x_val = x[train_idx], x[val_idx]
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
