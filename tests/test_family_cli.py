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


@pytest.mark.parametrize("flags, cls", [(["--conditional"], "numpyvae.family.FamilyVAE"),
                                        (["--model", "vqvae", "--codebook-size", "8"], "numpyvae.vqvae.VQVAE")])
@pytest.mark.parametrize("how", ["interrupt", "nan"])
def test_a_family_run_stopped_early_keeps_its_last_epoch_and_says_how_to_go_on(tmp_path, capsys, monkeypatch,
                                                                               flags, cls, how):
    import importlib
    import numpy as np
    mod_name, cls_name = cls.rsplit(".", 1)
    klass = getattr(importlib.import_module(mod_name), cls_name)
    out = tmp_path / "run"
    args = ["train", "--max-train", "200", "--hidden", "16", "--z-dim", "3", "--no-progress",
            "--batch-size", "50", *flags, "--out", str(out)]
    # epoch 1 (4 steps) runs; the second step of epoch 2 is interrupted / returns a NaN loss
    calls = {"n": 0}
    forward = klass.forward

    def broken(self, *a, **kw):
        t = forward(self, *a, **kw)
        calls["n"] += a[0].shape[0] == 50          # training steps only, not the validation passes
        if calls["n"] == 6 and a[0].shape[0] == 50:
            if how == "interrupt":
                raise KeyboardInterrupt
            t.loss = float("nan")
        return t
    monkeypatch.setattr(klass, "forward", broken)
    code = main(args + ["--epochs", "3"])
    err = capsys.readouterr().err
    assert code == (130 if how == "interrupt" else 1)
    assert "epoch 1 of 3" in err and "to continue" in err
    assert ("interrupted during epoch 2" in err) if how == "interrupt" else ("diverged at step 5 (epoch 2)" in err)
    assert (out / "loss_curves.png").exists() and (out / "history.csv").read_text().count("\n") == 2
    assert _config(out)["epoch"] == 1
    monkeypatch.setattr(klass, "forward", forward)
    resume = err.split("to continue")[1].split(": ", 1)[1].split()
    assert resume[:3] == ["numpyvae", "train", "--resume"]
    assert main(resume[1:] + ["--no-progress"]) == 0
    assert _config(out)["epoch"] == 3
    assert np.isfinite(json.loads((out / "history.json").read_text())["val_neg_elbo"]).all()


def test_an_interrupted_first_epoch_of_a_family_run_can_be_resumed(tmp_path, capsys, monkeypatch):
    from numpyvae.family import FamilyVAE as VAE
    out = tmp_path / "run"
    forward = VAE.forward

    def stop(self, *a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(VAE, "forward", stop)
    assert main(["train", *SMALL, "--conditional", "--out", str(out)]) == 130
    assert "the untrained model" in capsys.readouterr().err
    monkeypatch.setattr(VAE, "forward", forward)
    assert main(["train", "--resume", "--no-progress", "--out", str(out)]) == 0
    assert _config(out)["epoch"] == 1
