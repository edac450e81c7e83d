"""Tests for numpyvae.data: IDX/MAT readers, loaders, splits, binarization, minibatches."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyvae import data as ds

from _helpers import frey_bytes

MNIST_T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# ---------------------------------------------------------------- helpers

def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    """Serialise a uint8 array as IDX: 0, 0, type, ndim, big-endian dims, data."""
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def write(path, data: bytes, compress: bool = False):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def fake_mnist_dir(root, n_train=12, n_test=7, compress=True, seed=0):
    """Write a tiny data set with the MNIST file names into ``root``; return arrays."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if compress else ""
        write(root / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(x), compress)
        write(root / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(y), compress)
        out[split] = (x, y)
    return out


# ---------------------------------------------------------------- read_idx

@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_images_and_labels(tmp_path, compress):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=5, dtype=np.uint8)
    # deliberately misleading names: compression is detected from the bytes
    px = write(tmp_path / "images.bin", idx_bytes(x), compress)
    py = write(tmp_path / "labels.gz", idx_bytes(y), compress)
    gx, gy = ds.read_idx(px), ds.read_idx(str(py))
    assert gx.dtype == np.uint8 and gy.dtype == np.uint8
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    assert gx.flags.writeable


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), compress=st.booleans(),
       seed=st.integers(0, 2**16))
def test_read_idx_roundtrip_any_shape(tmp_path_factory, shape, compress, seed):
    arr = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    path = write(tmp_path_factory.mktemp("idx") / "a", idx_bytes(arr), compress)
    out = ds.read_idx(path)
    assert out.shape == tuple(shape)
    np.testing.assert_array_equal(out, arr)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.gz"):
        ds.read_idx(tmp_path / "nothere.gz")


def test_read_idx_directory(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        ds.read_idx(tmp_path)


def test_read_idx_bad_path_type():
    with pytest.raises(TypeError, match="path"):
        ds.read_idx(123)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_truncated_data(tmp_path, compress):
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10]
    path = write(tmp_path / "short.gz", data, compress)
    with pytest.raises(ValueError, match=r"short\.gz.*truncated"):
        ds.read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = write(tmp_path / "hdr", bytes([0, 0, 8, 3, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match=r"hdr.*truncated IDX header"):
        ds.read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = write(tmp_path / "long", idx_bytes(np.zeros(6, np.uint8)) + b"\x00\x01", True)
    with pytest.raises(ValueError, match=r"long.*2 unexpected trailing bytes"):
        ds.read_idx(path)


@pytest.mark.parametrize("head", [b"\x12\x34\x08\x03", b"\x00\x00\x08\x00", b"\x00\x00\x42\x01"])
def test_read_idx_wrong_magic(tmp_path, head):
    path = write(tmp_path / "magic.idx", head + b"\x00" * 16)
    with pytest.raises(ValueError, match=r"magic\.idx.*bad IDX magic.*2051"):
        ds.read_idx(path)


def test_read_idx_unsupported_type(tmp_path):
    path = write(tmp_path / "floats", bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 2) + b"\0" * 8)
    with pytest.raises(ValueError, match=r"floats.*float32.*not supported"):
        ds.read_idx(path)


def test_read_idx_empty(tmp_path):
    path = write(tmp_path / "empty.gz", b"")
    with pytest.raises(ValueError, match=r"empty\.gz.*empty"):
        ds.read_idx(path)


@pytest.mark.parametrize("page", [
    b"<!DOCTYPE html>\n<html><body>Forbidden</body></html>",
    b"\n  <html><head><title>Moved</title></head></html>",
])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_html_page(tmp_path, page, compress):
    path = write(tmp_path / "train-images-idx3-ubyte.gz", page, compress)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*HTML"):
        ds.read_idx(path)


def test_read_idx_lfs_pointer(tmp_path):
    text = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 9912422\n"
    path = write(tmp_path / "x.gz", text)
    with pytest.raises(ValueError, match="Git LFS"):
        ds.read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    full = gzip.compress(idx_bytes(np.arange(2000, dtype=np.uint8).reshape(2, 1000) % 251))
    path = write(tmp_path / "cut.gz", full[: len(full) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz.*gzip.*truncated"):
        ds.read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    full = bytearray(gzip.compress(idx_bytes(np.zeros((3, 50), np.uint8))))
    full[12:20] = b"\xff" * 8  # garble the deflate stream, keep the gzip magic
    path = write(tmp_path / "bad.gz", bytes(full))
    with pytest.raises(ValueError, match=r"bad\.gz.*gzip"):
        ds.read_idx(path)


# ---------------------------------------------------------------- loaders from a directory

@pytest.mark.parametrize("layout", ["direct", "subfolder"])
def test_load_mnist_layouts(tmp_path, layout):
    root = tmp_path / "mnist" if layout == "subfolder" else tmp_path
    ref = fake_mnist_dir(root)
    for split in ("train", "test"):
        x, y = ds.load_mnist(tmp_path, split=split)
        np.testing.assert_array_equal(x, ref[split][0])
        np.testing.assert_array_equal(y, ref[split][1])


def test_load_from_env_and_uncompressed(tmp_path, monkeypatch):
    ref = fake_mnist_dir(tmp_path / "fashion-mnist", compress=False)
    monkeypatch.setenv("NUMPYVAE_DATA", str(tmp_path))
    x, y = ds.load_fashion_mnist(split="test")
    np.testing.assert_array_equal(x, ref["test"][0])
    d = ds.load_dataset("fashion-mnist", val_size=2)
    assert d.x_train.shape == (10, 784) and d.x_val.shape == (2, 784)
    assert d.x_test.shape == (7, 784) and d.x_train.dtype == np.float32


def test_load_mnist_no_dir(monkeypatch):
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="NUMPYVAE_DATA"):
        ds.load_mnist()


def test_load_mnist_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ds.load_mnist(tmp_path / "nowhere")


def test_load_mnist_missing_files(tmp_path):
    fake_mnist_dir(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\.gz, t10k-labels-idx1-ubyte\.gz"):
        ds.load_mnist(tmp_path, split="test")
    ds.load_mnist(tmp_path, split="train")  # the other split is still fine


def test_load_mnist_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        ds.load_mnist(tmp_path, split="valid")


def test_load_mnist_count_mismatch(tmp_path):
    fake_mnist_dir(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(3, np.uint8)), True)
    with pytest.raises(ValueError, match="12 images.*3 labels"):
        ds.load_mnist(tmp_path)


# ---------------------------------------------------------------- embedded MNIST

@pytest.fixture(scope="module")
def embedded():
    return ds.load_embedded_mnist()


def test_packaged_files_md5():
    for name, md5 in ds.EMBEDDED_MD5.items():
        raw = resources.files("numpyvae.data").joinpath(name).read_bytes()
        assert hashlib.md5(raw).hexdigest() == md5
    assert ds.EMBEDDED_MD5 == {
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    text = resources.files("numpyvae.data").joinpath("LICENSE-MNIST.txt").read_text()
    assert "LeCun" in text and "CC BY-SA 3.0" in text


def test_embedded_shape_range_and_labels(embedded):
    x, y = embedded
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,) and y.dtype == np.uint8
    assert x.min() == 0 and x.max() == 255
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == 10000
    assert counts.tolist() == MNIST_T10K_COUNTS


def test_embedded_equals_shared_copy(embedded, shared_file):
    x, y = embedded
    np.testing.assert_array_equal(ds.read_idx(shared_file("mnist/t10k-images-idx3-ubyte.gz")), x)
    labels = ds.read_idx(shared_file("mnist/t10k-labels-idx1-ubyte.gz"))
    assert np.bincount(labels, minlength=10).tolist() == MNIST_T10K_COUNTS


def test_default_dataset_split(embedded):
    d = ds.load_dataset()
    assert d.name == "mnist-embedded"
    assert d.x_train.shape == (9000, 784) and d.x_val.shape == (1000, 784)
    assert d.x_train.dtype == np.float32 and d.x_dim == 784 and d.image_shape == (28, 28)
    assert d.x_test is None and d.y_test is None and not d.has_test
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    # the same seed gives the same split; the parts are disjoint and cover all 10000 images
    d2 = ds.load_dataset("mnist-embedded", seed=0)
    np.testing.assert_array_equal(d.x_val, d2.x_val)
    np.testing.assert_array_equal(d.y_train, d2.y_train)
    tr, va = ds.train_val_indices(10000, 1000, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(np.union1d(tr, va)) == 10000
    x, y = embedded
    np.testing.assert_array_equal(d.x_val, ds.scale_pixels(x[va]).reshape(1000, -1))
    np.testing.assert_array_equal(d.y_train, y[tr])
    # another seed gives another split
    d3 = ds.load_dataset("mnist-embedded", seed=1)
    assert not np.array_equal(d.y_val, d3.y_val)


def test_loading_splits_before_it_scales(embedded):
    """The uint8 images are split, then each part is scaled to float32: at no time does a float32
    copy of all the images sit beside its two parts (for MNIST's 60,000: 376 MB instead of 188).
    The traced peak stays under 1.5 times the float32 rows returned; scaling first needs 2."""
    import tracemalloc
    ds.load_dataset()                                   # file reads and imports, once, untraced
    tracemalloc.start()
    try:
        d = ds.load_dataset()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rows = d.x_train.nbytes + d.x_val.nbytes
    assert peak < 1.5 * rows, (peak, rows)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 500), data=st.data())
def test_train_val_indices_partition(n, data):
    val = data.draw(st.integers(1, n - 1))
    seed = data.draw(st.integers(0, 1000))
    tr, va = ds.train_val_indices(n, val, seed)
    assert len(va) == val and len(tr) == n - val
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))
    tr2, va2 = ds.train_val_indices(n, val, seed)
    np.testing.assert_array_equal(va, va2)


@pytest.mark.parametrize("val", [0, 10, -1, 2.5, True])
def test_train_val_indices_bad_size(val):
    with pytest.raises(ValueError, match="val_size"):
        ds.train_val_indices(10, val)


# ---------------------------------------------------------------- pixels and binarization

def test_scale_pixels():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    out = ds.scale_pixels(x)
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]], rtol=1e-7)
    with pytest.raises(TypeError, match="uint8"):
        ds.scale_pixels(x.astype(np.float32))


def test_binarize_fixed_is_fixed():
    x = np.random.default_rng(3).random((50, 784)).astype(np.float32)
    a, b = ds.binarize_fixed(x, seed=7), ds.binarize_fixed(x, seed=7)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert set(np.unique(a).tolist()) <= {0.0, 1.0}
    assert not np.array_equal(a, ds.binarize_fixed(x, seed=8))
    # exact 0 and 1 grey levels stay as they are
    edge = np.array([0.0, 1.0] * 100, dtype=np.float64)
    np.testing.assert_array_equal(ds.binarize_fixed(edge, 0), edge)


def test_binarize_dynamic_differs_and_mean():
    rng = np.random.default_rng(0)
    x = np.full((200, 784), 0.3, dtype=np.float32)
    a, b = ds.binarize_dynamic(x, rng), ds.binarize_dynamic(x, rng)
    assert not np.array_equal(a, b)
    assert set(np.unique(a).tolist()) <= {0.0, 1.0}
    assert abs(a.mean() - 0.3) < 0.01 and abs(b.mean() - 0.3) < 0.01
    # per-pixel mean over many draws approaches a varying grey image
    grey = np.linspace(0, 1, 20)[None, :].repeat(2000, axis=0)
    np.testing.assert_allclose(ds.binarize_dynamic(grey, rng).mean(axis=0), grey[0], atol=0.05)


def test_binarize_bad_input():
    with pytest.raises(TypeError, match="scale_pixels"):
        ds.binarize_fixed(np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ds.binarize_fixed(np.array([0.5, 1.5]))
    with pytest.raises(TypeError, match="Generator"):
        ds.binarize_dynamic(np.zeros(3), rng=0)


def test_load_dataset_binarize_modes():
    fixed = ds.load_dataset("mnist-embedded", binarize="fixed")
    again = ds.load_dataset("mnist-embedded", binarize="fixed")
    np.testing.assert_array_equal(fixed.x_train, again.x_train)
    assert set(np.unique(fixed.x_val).tolist()) == {0.0, 1.0}
    assert fixed.binarize == "fixed"
    dyn = ds.load_dataset("mnist-embedded", binarize="dynamic")
    assert dyn.binarize == "dynamic" and len(np.unique(dyn.x_train)) > 2  # left grey
    with pytest.raises(ValueError, match="binarize"):
        ds.load_dataset("mnist-embedded", binarize="always")
    with pytest.raises(ValueError, match="binarize"):
        ds.load_dataset("pinwheel", binarize="fixed")


# ---------------------------------------------------------------- minibatches

@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 60), batch=st.integers(1, 17), drop_last=st.booleans(),
       shuffle=st.booleans())
def test_minibatches_cover_each_row_once(n, batch, drop_last, shuffle):
    x = np.arange(n * 2).reshape(n, 2)
    rng = np.random.default_rng(0)
    batches = list(ds.iterate_minibatches(x, batch, rng, shuffle=shuffle, drop_last=drop_last))
    rows = np.concatenate([b[:, 0] // 2 for b in batches]) if batches else np.array([], int)
    assert all(len(b) <= batch for b in batches)
    if drop_last:
        assert all(len(b) == batch for b in batches) and len(rows) == (n // batch) * batch
    else:
        np.testing.assert_array_equal(np.sort(rows), np.arange(n))
    assert len(np.unique(rows)) == len(rows)
    if not shuffle:
        np.testing.assert_array_equal(rows, np.arange(len(rows)))


def test_minibatches_indices_and_errors():
    idx = list(ds.iterate_minibatches(10, 4, np.random.default_rng(1)))
    assert [len(i) for i in idx] == [4, 4, 2] and idx[0].dtype.kind == "i"
    again = list(ds.iterate_minibatches(10, 4, np.random.default_rng(1)))
    assert all(np.array_equal(a, b) for a, b in zip(idx, again))
    x = np.zeros((5, 3))
    assert len(list(ds.iterate_minibatches(x, 2, shuffle=False, return_indices=True))) == 3
    with pytest.raises(TypeError, match="rng"):
        next(ds.iterate_minibatches(x, 2))
    with pytest.raises(ValueError, match="batch_size"):
        next(ds.iterate_minibatches(x, 0, np.random.default_rng()))


# ---------------------------------------------------------------- toy sets

@pytest.mark.parametrize("name,k", [("two-moons", 2), ("gaussian-mixture", 8), ("pinwheel", 5)])
def test_toy_sets(name, k):
    d = ds.load_dataset(name, seed=3)
    assert d.x_train.shape == (8000, 2) and d.x_val.shape == (1000, 2) and d.x_test.shape == (1000, 2)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.uint8
    assert d.image_shape is None and d.x_dim == 2
    assert set(np.unique(d.y_train).tolist()) == set(range(k))
    assert np.isfinite(d.x_train).all()
    same = ds.load_dataset(name, seed=3)
    np.testing.assert_array_equal(d.x_train, same.x_train)
    np.testing.assert_array_equal(d.y_test, same.y_test)
    other = ds.load_dataset(name, seed=4)
    assert not np.array_equal(d.x_train, other.x_train)
    assert ds.load_dataset(name, val_size=10).x_val.shape == (10, 2)


def test_toy_geometry():
    x, y = ds.make_gaussian_mixture(4000, seed=0, n_components=8, radius=2.0, std=0.1)
    angle = 2 * np.pi * y / 8
    centres = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    assert np.abs(x - centres).std() < 0.12
    x, y = ds.make_two_moons(2000, seed=0, noise=0.0)
    r0 = np.hypot(x[y == 0, 0], x[y == 0, 1])
    np.testing.assert_allclose(r0, 1.0, atol=1e-5)
    assert (x[y == 0, 1] >= -1e-6).all()
    x, _ = ds.make_pinwheel(2000, seed=0)
    assert np.abs(np.hypot(x[:, 0], x[:, 1]).mean() - 1.0) < 0.1
    with pytest.raises(ValueError, match="n must"):
        ds.make_pinwheel(0)


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError) as info:
        ds.load_dataset("cifar10")
    for name in ds.DATASETS:
        assert name in str(info.value)


def test_frey_synthetic_roundtrip(tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, size=(1965, 28, 20), dtype=np.uint8)
    (tmp_path / "frey").mkdir()
    write(tmp_path / "frey" / "frey_rawface.mat", frey_bytes(faces))
    np.testing.assert_array_equal(ds.load_frey(tmp_path), faces)
    d = ds.load_dataset("frey", data_dir=tmp_path)
    assert d.x_train.shape == (1765, 560) and d.x_val.shape == (200, 560)
    assert d.image_shape == (28, 20) and d.x_test is None and d.y_train is None


def test_frey_bad_files(tmp_path):
    faces = np.zeros((1965, 28, 20), np.uint8)
    good = frey_bytes(faces)
    with pytest.raises(ValueError, match=r"cut\.mat.*bytes"):
        ds.read_frey_mat(write(tmp_path / "cut.mat", good[:-100]))
    with pytest.raises(ValueError, match=r"other\.mat.*MATLAB 5\.0 MAT-file"):
        ds.read_frey_mat(write(tmp_path / "other.mat", b"MATLAB 7.3" + good[10:]))
    with pytest.raises(ValueError, match=r"page\.mat.*HTML"):
        ds.read_frey_mat(write(tmp_path / "page.mat", b"<!DOCTYPE html><html></html>"))
    wrong_dims = good.replace(struct.pack("<ii", 560, 1965), struct.pack("<ii", 1965, 560))
    with pytest.raises(ValueError, match=r"1965 x 560"):
        ds.read_frey_mat(write(tmp_path / "dims.mat", wrong_dims))
    with pytest.raises(FileNotFoundError, match="frey_rawface.mat"):
        ds.load_frey(tmp_path)


def test_frey_real(shared_data, shared_file):
    shared_file("frey/frey_rawface.mat")
    faces = ds.load_frey(shared_data)
    assert faces.shape == (1965, 28, 20)
    assert faces.reshape(1965, -1).shape == (1965, 560)
    assert faces.min() == 8 and faces.max() == 238
    d = ds.load_dataset("frey", data_dir=shared_data)
    assert d.x_train.shape == (1765, 560) and d.x_val.shape == (200, 560)
    assert d.x_train.min() >= 8 / 255 - 1e-7 and d.x_train.max() <= 238 / 255 + 1e-7


# ---------------------------------------------------------------- real data sets (shared folder)

@pytest.mark.slow
def test_mnist_real(shared_data, shared_file):
    shared_file("mnist/train-images-idx3-ubyte.gz")
    x, y = ds.load_mnist(shared_data, "train")
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    assert np.bincount(y, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    xt, yt = ds.load_mnist(shared_data / "mnist", "test")  # the folder itself also works
    assert xt.shape == (10000, 28, 28)
    assert np.bincount(yt, minlength=10).tolist() == MNIST_T10K_COUNTS
    d = ds.load_dataset("mnist", data_dir=shared_data)
    assert d.x_train.shape == (50000, 784) and d.x_val.shape == (10000, 784)
    assert d.x_test.shape == (10000, 784) and d.y_test.shape == (10000,)
    assert (np.bincount(d.y_train, minlength=10) + np.bincount(d.y_val, minlength=10)).tolist() \
        == MNIST_TRAIN_COUNTS


def test_fashion_mnist_real(shared_data, shared_file):
    shared_file("fashion-mnist/t10k-images-idx3-ubyte.gz")
    x, y = ds.load_fashion_mnist(shared_data, "test")
    assert x.shape == (10000, 28, 28)
    assert np.bincount(y, minlength=10).tolist() == [1000] * 10
    _, ytr = ds.load_fashion_mnist(shared_data, "train")
    assert np.bincount(ytr, minlength=10).tolist() == [6000] * 10


def test_binarized_mnist_real(shared_data, shared_file):
    shared_file("binarized-mnist/binarized_mnist.npz")
    tr, va, te = ds.load_binarized_mnist(shared_data)
    assert tr.shape == (50000, 784) and va.shape == (10000, 784) and te.shape == (10000, 784)
    assert set(np.unique(va).tolist()) == {0, 1}
    assert abs(tr.mean() - 0.1306) < 5e-4 and abs(te.mean() - 0.1325) < 5e-4
    d = ds.load_dataset("binarized-mnist", data_dir=shared_data)
    assert d.x_test.shape == (10000, 784) and d.x_train.dtype == np.float32 and d.y_train is None
    with pytest.raises(ValueError, match="already binary"):
        ds.load_dataset("binarized-mnist", data_dir=shared_data, binarize="dynamic")


def test_real_truncated_copy(tmp_path, shared_file):
    src = shared_file("mnist/t10k-labels-idx1-ubyte.gz")
    raw = src.read_bytes()
    path = write(tmp_path / "t10k-labels-idx1-ubyte.gz", raw[: len(raw) - 300])
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz.*gzip"):
        ds.read_idx(path)
    shutil.copy(src, tmp_path / "copy.gz")
    assert ds.read_idx(tmp_path / "copy.gz").shape == (10000,)
