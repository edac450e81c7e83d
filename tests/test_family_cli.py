"""CLI access to the model family: train flags, checkpoint records, resume, evaluate."""
from __future__ import annotations

import json

import pytest

from numpyvae.cli.main import main

SMALL = ["--max-train", "200", "--epochs", "1", "--hidden", "16", "--z-dim", "3", "--no-progress"]


def _config(out):
    return json.loads((out / "checkpoint.json").read_text())


def test_iwae_full_covariance_run_records_and_resumes(tmp_path, capsys):
    out = tmp_path / "iwae"
    assert main(["train", *SMALL, "--objective", "iwae", "--k", "2", "--posterior", "full",
                 "--out", str(out)]) == 0
    cfg = _config(out)["model_config"]
    assert (cfg["objective"], cfg["posterior"]) == ("iwae", "full")
    assert main(["train", "--resume", "--epochs", "2", "--no-progress", "--out", str(out)]) == 0
    meta = _config(out)
    assert meta["epoch"] == 2 and meta["model_config"]["objective"] == "iwae"
    assert meta["model_config"]["posterior"] == "full"
    assert main(["evaluate", str(out / "checkpoint.npz"), "--max-examples", "50"]) == 0
    assert "negative ELBO" in capsys.readouterr().out


@pytest.mark.parametrize("flags, what", [(["--conditional"], "n_classes"),
                                         (["--model", "vqvae", "--codebook-size", "8"], "vqvae")])
def test_conditional_and_vqvae_train_and_evaluate(tmp_path, capsys, flags, what):
    out = tmp_path / what
    assert main(["train", *SMALL, *flags, "--out", str(out)]) == 0
    cfg = _config(out)["model_config"]
    assert cfg.get("n_classes") == 10 if what == "n_classes" else cfg["model"] == "vqvae"
    extra = ["--iw-k", "20"] if what == "n_classes" else []
    assert main(["evaluate", str(out / "checkpoint.npz"), "--max-examples", "30", *extra]) == 0
    printed = capsys.readouterr().out
    assert "negative ELBO" in printed
    assert ("log p(x | y)" in printed) if what == "n_classes" else ("perplexity" in printed)


@pytest.mark.parametrize("flags, message", [
    (["--objective", "iwae", "--beta", "0.5"], "--beta"),
    (["--model", "vqvae", "--posterior", "full"], "vqvae"),
    (["--codebook-size", "8"], "--model vqvae"),
    (["--model", "vqvae", "--k", "3"], "--commitment"),
])
def test_contradicting_family_flags_exit_2(tmp_path, capsys, flags, message):
    assert main(["train", *SMALL, *flags, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err


def test_resume_refuses_a_different_objective_or_posterior(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--objective", "iwae", "--k", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--epochs", "2", "--objective", "elbo", "--no-progress",
                 "--out", str(out)]) == 2
    assert "--objective elbo (the run has iwae)" in capsys.readouterr().err
    assert main(["train", "--resume", "--epochs", "2", "--posterior", "full", "--no-progress",
                 "--out", str(out)]) == 2
    assert "--posterior full (the run has diag)" in capsys.readouterr().err
