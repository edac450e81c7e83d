"""``numpyvae train --model conv`` through the one training path: a run, its figures (with the
first layer's filters), exact continuation after --resume, evaluate --iw-k, and the options and
memory refused in one line."""
from __future__ import annotations

import numpy as np
import pytest

from numpyvae.cli.main import main
from numpyvae.conv import ConvVAE
from numpyvae.training import checkpoint as ck
from numpyvae.training.trainer import read_history

TINY = ["--model", "conv", "--channels", "4,8", "--z-dim", "4", "--max-train", "200", "--batch-size", "50",
        "--no-progress", "--threads", "1"]


def _train(out, epochs, *more):
    assert main(["train", *TINY, *more, "--epochs", str(epochs), "--out", str(out)]) == 0


@pytest.mark.parametrize("more", [[], ["--objective", "iwae", "--k", "2"], ["--conditional"]],
                         ids=["elbo", "iwae", "conditional"])
def test_one_epoch_then_resume_equals_two_epochs_straight(tmp_path, capsys, more):
    _train(tmp_path / "straight", 2, *more)
    _train(tmp_path / "resumed", 1, *more)
    assert main(["train", "--resume", "--epochs", "2", "--no-progress", "--out", str(tmp_path / "resumed")]) == 0
    a = ck.load(str(tmp_path / "straight" / "checkpoint.npz"))
    b = ck.load(str(tmp_path / "resumed" / "checkpoint.npz"))
    assert a.model_config["model"] == "conv" and a.model_config == b.model_config
    assert (a.epoch, a.step) == (b.epoch, b.step) == (2, 8)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    for key in a.opt_state:
        assert np.array_equal(a.opt_state[key], b.opt_state[key]), key
    assert a.rng_states == b.rng_states
    assert read_history(tmp_path / "straight" / "history.csv") == read_history(tmp_path / "resumed" / "history.csv")
    model = b.build_model()
    assert isinstance(model, ConvVAE) and model.channels == (4, 8)


def test_a_run_writes_the_filters_and_evaluates_with_iw_k(tmp_path, capsys):
    out = tmp_path / "run"
    _train(out, 1)
    for name in ("filters.png", "samples.png", "reconstructions.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 1000, name
    capsys.readouterr()
    assert main(["evaluate", str(out), "--max-examples", "20", "--iw-k", "5"]) == 0
    text = capsys.readouterr().out
    elbo = float(text.split("negative ELBO: ")[1].split()[0])
    ll = float(text.split("(negative: ")[1].split(")")[0])
    assert 0 < ll < elbo + 5          # the K = 5 bound, on 20 images, is near the ELBO or below


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_conv_options_are_checked_in_one_line(tmp_path, capsys):
    out = ["--out", str(tmp_path / "x")]
    assert "need --model conv" in _error(capsys, ["train", "--channels", "8", *out])
    assert "diagonal posterior" in _error(capsys, ["train", "--model", "conv", "--posterior", "full", *out])
    assert "image data sets" in _error(capsys, ["train", "--model", "conv", "--dataset", "pinwheel", *out])
    assert "--padding 4 must be smaller" in _error(capsys, ["train", "--model", "conv", "--kernel-size", "4",
                                                            "--padding", "4", *out])
    err = _error(capsys, ["train", "--model", "conv", "--channels", "4,4,4,4,4", *out])
    assert "too small" in err and "--model conv" in err
    err = _error(capsys, ["train", "--model", "conv", "--batch-size", "10000000", *out])
    assert "--batch-size 10000000 needs about" in err and "available" in err
