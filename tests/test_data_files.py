"""The binarized-MNIST reader checks its file as the other readers do: whatever sits under the
name binarized_mnist.npz (a cut-off download, a web page, pickled objects, a named pipe), the
error is one line that names the file and says what was expected."""
from __future__ import annotations

import os

import numpy as np
import pytest

from numpyvae.cli import main
from numpyvae.data import formats


def _good_npz(path) -> bytes:
    rng = np.random.default_rng(0)
    parts = {k: np.packbits(rng.random((n, 784)) < 0.3, axis=1) for k, n in
             (("train", 40), ("valid", 10), ("test", 10))}
    np.savez(path, **parts)
    return path.read_bytes()


def _folder_with(tmp_path, content: bytes | None, **arrays):
    d = tmp_path / "data"
    d.mkdir()
    f = d / "binarized_mnist.npz"
    if arrays:
        np.savez(f, **arrays)
    elif content is not None:
        f.write_bytes(content)
    return d, f


def _cases(tmp_path):
    whole = _good_npz(tmp_path / "whole.npz")
    return {
        "cut in the middle": (whole[: len(whole) // 2], {}),
        "cut near the end": (whole[:-30], {}),
        "cut after the header": (whole[:100], {}),
        "empty": (b"", {}),
        "web page": (b"<!DOCTYPE html><html><head><title>404</title></head></html>", {}),
        "other binary": (b"\x00\x01\x02" * 100, {}),
        "objects": (None, {"train": np.array([{"a": 1}], dtype=object)}),
        "missing key": (None, {"train": np.zeros((2, 98), np.uint8)}),
    }


@pytest.mark.parametrize("case", ["cut in the middle", "cut near the end", "cut after the header", "empty",
                                  "web page", "other binary", "objects", "missing key"])
def test_a_bad_file_gets_one_line_naming_it(tmp_path, case):
    content, arrays = _cases(tmp_path)[case]
    d, f = _folder_with(tmp_path, content, **arrays)
    with pytest.raises(ValueError) as info:
        formats.load_binarized_mnist(d)
    msg = str(info.value)
    assert msg.startswith(str(f)) and "\n" not in msg
    assert ("expected" in msg and "'train'" in msg) or "HTML page" in msg
    assert "unsafe" not in msg and "allow_pickle" not in msg


def test_a_good_file_still_reads(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    _good_npz(d / "binarized_mnist.npz")
    train, valid, test = formats.load_binarized_mnist(d)
    assert train.shape == (40, 784) and valid.shape == test.shape == (10, 784)
    assert set(np.unique(train)) <= {0, 1}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_not_read(tmp_path):
    d = tmp_path / "data" / "binarized-mnist"
    d.mkdir(parents=True)
    os.mkfifo(d / "binarized_mnist.npz")
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        formats.load_binarized_mnist(tmp_path / "data")
    assert "binarized_mnist.npz" in str(info.value)


@pytest.mark.parametrize("case", ["cut in the middle", "web page"])
def test_the_command_says_it_in_one_line(tmp_path, capsys, case):
    content, _ = _cases(tmp_path)[case]
    d, f = _folder_with(tmp_path, content)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "binarized-mnist", "--data-dir", str(d), "--out", str(out),
                 "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"numpyvae: error: {f}") and "Traceback" not in err
    assert "allow_pickle" not in err and "unsafe" not in err
    assert not (out / "checkpoint.npz").exists()
