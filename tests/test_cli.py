"""The numpyvae command: an end-to-end tiny run, evaluate, gradcheck, and clean argument errors."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from numpyvae.training import checkpoint as ck
from numpyvae.cli import main
from numpyvae.training.trainer import HISTORY_COLUMNS

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = ["--max-train", "300", "--epochs", "1", "--hidden", "32", "--no-progress"]


def _is_png(path: Path) -> bool:
    with open(path, "rb") as fh:
        if fh.read(8) != PNG_SIGNATURE:
            return False
    return mpimg.imread(os.fspath(path)).ndim == 3


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    rc = main(["train", "--out", str(out), "--z-dim", "2", "--seed", "3"] + TINY)
    return rc, out


def test_train_end_to_end_writes_every_file(tiny_run, capsys):
    rc, out = tiny_run
    assert rc == 0
    expected = ["checkpoint.npz", "checkpoint.json", "history.csv", "history.json", "loss_curves.png",
                "reconstructions.png", "samples.png", "latent.png", "manifold.png"]
    for name in expected:
        assert (out / name).is_file(), name
    for name in expected:
        if name.endswith(".png"):
            assert _is_png(out / name), name
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    with open(out / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    assert tuple(rows[0].keys()) == HISTORY_COLUMNS
    assert int(rows[0]["epoch"]) == 1 and int(rows[0]["step"]) == 3
    assert float(rows[0]["val_neg_elbo"]) > 0
    hist = json.loads((out / "history.json").read_text())
    assert tuple(hist) == HISTORY_COLUMNS
    c = ck.load(out / "checkpoint.npz")
    assert c.model_config["z_dim"] == 2 and c.model_config["hidden"] == [32]
    assert c.extra["dataset"] == "mnist-embedded" and c.extra["binarize"] == "dynamic"
    assert c.train_config["binarize"] is True and c.epoch == 1


def test_train_summary_is_printed(tmp_path, capsys):
    rc = main(["train", "--out", str(tmp_path / "r"), "--z-dim", "3", "--hidden", ""] + TINY[:4] + ["--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "validation negative ELBO" in out and "KL" in out and str(tmp_path / "r") in out
    assert not (tmp_path / "r" / "manifold.png").exists()  # only for z_dim = 2


def test_resume_extends_the_history(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]
    assert ck.load(out / "checkpoint.npz").extra["n_train"] == 300


def test_toy_dataset_draws_scatter_plots(tmp_path):
    out = tmp_path / "toy"
    rc = main(["train", "--dataset", "two-moons", "--out", str(out), "--z-dim", "2", "--hidden", "16",
               "--epochs", "1", "--max-train", "500", "--no-progress"])
    assert rc == 0
    assert _is_png(out / "toy.png") and _is_png(out / "latent.png")
    assert ck.load(out / "checkpoint.npz").model_config["likelihood"] == "gaussian"


def test_evaluate_checkpoint(tiny_run, capsys):
    _, out = tiny_run
    capsys.readouterr()
    rc = main(["evaluate", str(out / "checkpoint.npz"), "--max-examples", "200", "--iw-k", "5"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "negative ELBO" in text and "val split" in text and "importance-sampled" in text


def test_evaluate_matches_the_validation_history(tiny_run, capsys):
    _, out = tiny_run
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.npz"), "--batch-size", "1000"]) == 0
    text = capsys.readouterr().out
    val = json.loads((out / "history.json").read_text())["val_neg_elbo"][-1]
    assert f"negative ELBO: {val:.2f}" in text


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck"]) == 0
    text = capsys.readouterr().out
    for lik in ("bernoulli", "gaussian", "gaussian_learned"):
        assert f"likelihood {lik}" in text
    assert "all passed" in text and "dec.out.W" in text


def test_gradcheck_single_likelihood(capsys):
    assert main(["gradcheck", "--likelihood", "gaussian", "--kl", "mc", "--k", "1"]) == 0
    assert "likelihood gaussian," in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["train", "--dataset", "no-such-set"],
    ["train", "--epochs", "0"],
    ["train", "--epochs", "-3"],
    ["train", "--batch-size", "0"],
    ["train", "--z-dim", "0"],
    ["train", "--max-train", "-1"],
    ["train", "--hidden", "400,abc"],
    ["train", "--hidden", "0"],
    ["train", "--lr", "-1e-3"],
    ["train", "--lr", "nan"],
    ["train", "--beta", "-1"],
    ["train", "--likelihood", "poisson"],
    ["train", "--dataset", "mnist", "--data-dir", "/definitely/not/here"],
    ["train", "--dataset", "two-moons", "--likelihood", "bernoulli"],
    ["evaluate"],
    ["evaluate", "/definitely/not/here/checkpoint.npz"],
    ["gradcheck", "--k", "0"],
])
def test_bad_arguments_give_one_line_and_exit_2(argv, capsys, tmp_path):
    rc = main(argv + (["--out", str(tmp_path / "o")] if argv[:1] == ["train"] else []))
    assert rc == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("numpyvae: error: ")
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "o" / "checkpoint.npz").exists()


def test_missing_data_directory_from_environment(monkeypatch, capsys):
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)
    assert main(["train", "--dataset", "fashion-mnist", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpyvae: error: ") and "NUMPYVAE_DATA" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("NUMPYVAE_DATA", "/no/such/dir")
    assert main(["train", "--dataset", "mnist", "--no-progress"]) == 2
    assert "data directory not found" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"garbage bytes", None])
def test_unreadable_checkpoint_is_a_clean_error(tmp_path, capsys, content):
    p = tmp_path / "bad.npz"
    if content is None:
        np.savez(p, something=np.zeros(2))
    else:
        p.write_bytes(content)
    assert main(["evaluate", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numpyvae: error: ") and "not a numpyvae checkpoint" in err
    assert len(err.strip().splitlines()) == 1


def test_python_dash_m_and_help():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "numpyvae", "--help"], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0 and "train" in r.stdout and "evaluate" in r.stdout
    r = subprocess.run([sys.executable, "-m", "numpyvae", "train", "--batch-size", "-5"], capture_output=True,
                       text=True, env=env, cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("numpyvae: error:") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
