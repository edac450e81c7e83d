"""On-disk formats of the real data sets: IDX (MNIST, Fashion-MNIST), Frey Face's
MATLAB v4 file, Larochelle's binarized MNIST (.npz), and the MNIST test set shipped in
this folder. Every malformed file gets one clear error naming the file and what was wrong.

A data directory may hold the files directly or in per-data-set subfolders (``mnist/``,
``fashion-mnist/``, ``frey/``, ``binarized-mnist/``), the layout of the shared test data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from importlib import resources
from pathlib import Path
from collections.abc import Sequence

import numpy as np

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


def _read_npz(path: str | os.PathLike, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the .npz archive at ``path``; a file that is not one (a web page,
    a truncated download, pickled objects) gets one line naming the file and what was expected."""
    p = _check_file(path)
    name, size = str(p), p.stat().st_size
    want = f"an .npz archive with the arrays {', '.join(repr(k) for k in keys)}"
    with open(p, "rb") as fh:
        head = fh.read(512)
    if size == 0:
        raise ValueError(f"{name}: file is empty; expected {want}")
    hint = _describe_non_idx(head)
    if hint is not None:
        raise ValueError(f"{name}: not an .npz archive: {hint}")
    if not head.startswith(b"PK"):
        raise ValueError(f"{name}: not an .npz (zip) archive ({size} bytes beginning {head[:8]!r}); expected {want}")
    try:
        with np.load(p, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise _NpzContent(f"{name}: expected {want}; it has no {', '.join(map(repr, missing))} "
                                  f"(it holds {', '.join(map(repr, npz.files)) or 'nothing'})")
            return {k: npz[k] for k in keys}
    except _NpzContent as exc:
        raise ValueError(str(exc)) from None
    except ValueError as exc:
        if "pickle" in str(exc):    # object arrays: numpyvae never unpickles data
            raise ValueError(f"{name}: holds Python objects, not arrays of numbers; expected {want}") from None
        raise ValueError(f"{name}: damaged .npz archive ({exc}); expected {want} (download it again)") from None
    except Exception as exc:        # zipfile.BadZipFile, EOFError, zlib.error, OSError of a cut-off file
        raise ValueError(f"{name}: truncated or damaged .npz archive ({type(exc).__name__}: {exc}); "
                         f"expected {want} (download it again)") from None


class _NpzContent(Exception):
    """An .npz archive that reads but lacks an array (kept apart from NumPy's ValueErrors)."""


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
    packed = _read_npz(path, ("train", "valid", "test"))
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
