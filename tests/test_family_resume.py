"""--resume for --conditional and --model vqvae runs: exact continuation, the same rules as the
main path (contradicting options, nothing to do), and the figures these runs write."""
from __future__ import annotations

import json

import numpy as np
import pytest

from numpyvae.cli.main import main
from numpyvae.training import checkpoint as ck

TINY = ["--max-train", "300", "--hidden", "32", "--no-progress"]
FAMILIES = [pytest.param(["--conditional"], id="conditional"),
            pytest.param(["--model", "vqvae", "--codebook-size", "8"], id="vqvae")]


def _train(out, flags, epochs):
    assert main(["train", *TINY, *flags, "--epochs", str(epochs), "--out", str(out)]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("flags", FAMILIES)
def test_one_epoch_then_resume_equals_two_epochs_straight(tmp_path, capsys, flags):
    _train(tmp_path / "straight", flags, 2)
    _train(tmp_path / "resumed", flags, 1)
    assert main(["train", "--resume", "--epochs", "2", "--no-progress", "--out", str(tmp_path / "resumed")]) == 0
    a = ck.load(str(tmp_path / "straight" / "checkpoint.npz"))
    b = ck.load(str(tmp_path / "resumed" / "checkpoint.npz"))
    assert (a.epoch, a.step) == (b.epoch, b.step) == (2, 6)
    assert sorted(a.params) == sorted(b.params)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    for key in a.opt_state:
        assert np.array_equal(a.opt_state[key], b.opt_state[key]), key
    assert a.rng_states == b.rng_states
    assert a.history == b.history and len(b.history["epoch"]) == 2
    assert a.meta["model"] == b.meta["model"] and a.model_config == b.model_config
    assert [r["at_epoch"] for r in b.extra["resumes"]] == [1]
    assert b.build_optimizer() is not None


@pytest.mark.slow
@pytest.mark.parametrize("flags", FAMILIES)
def test_family_resume_follows_the_main_rules(tmp_path, capsys, flags):
    out = tmp_path / "run"
    _train(out, flags, 1)
    capsys.readouterr()
    assert main(["train", "--resume", "--no-progress", "--out", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["train", "--resume", "--epochs", "2", "--hidden", "64", "--no-progress", "--out", str(out)]) == 2
    assert "--hidden 64 (the run has 32)" in capsys.readouterr().err
    other = ["--model", "vqvae"] if "--conditional" in flags else ["--conditional"]
    assert main(["train", "--resume", "--epochs", "2", *other, "--no-progress", "--out", str(out)]) == 2
    assert "contradict the checkpoint" in capsys.readouterr().err
    assert main(["train", "--resume", "--epochs", "2", "--lr", "0.0005", "--no-progress", "--out", str(out)]) == 0
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["epoch"] == 2 and meta["optimizer"]["lr"] == 0.0005
    assert meta["extra"]["resumes"][-1]["changed"]["lr"] == [0.001, 0.0005]


@pytest.mark.slow
def test_old_family_checkpoint_says_why_it_cannot_resume(tmp_path, capsys):
    out = tmp_path / "old"
    _train(out, ["--conditional"], 1)
    c = ck.load(str(out / "checkpoint.npz"))
    model = c.build_model()
    # as written before family runs saved their optimizer and shuffling state
    ck.save(str(out / "checkpoint.npz"), model, None,
            {"epoch": 1, "step": c.step, "history": c.history, "extra": c.extra, "train_config": c.train_config})
    capsys.readouterr()
    assert main(["train", "--resume", "--epochs", "2", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot be continued exactly" in err and "does not describe its optimizer" not in err


@pytest.mark.slow
@pytest.mark.parametrize("flags, figures", [
    (["--conditional"], ["loss_curves.png", "class_samples.png"]),
    (["--model", "vqvae", "--codebook-size", "8"], ["loss_curves.png", "reconstructions.png", "codebook_usage.png"]),
])
def test_family_runs_write_their_figures(tmp_path, capsys, flags, figures):
    out = tmp_path / "run"
    _train(out, flags, 1)
    for name in figures:
        assert (out / name).stat().st_size > 1000, name
    said = capsys.readouterr().out
    assert all(name in said for name in figures)
    if "--model" in flags:
        hist = json.loads((out / "history.json").read_text())
        assert 1 <= hist["val_codes_used"][0] <= 8 and hist["val_perplexity"][0] <= 8
    # --force starts over and removes the figures of the run it replaces
    (out / "class_samples.png").write_bytes(b"old")
    _train(out, [*flags, "--force"], 1)
    kept = out / "class_samples.png"
    assert (kept.stat().st_size > 1000) if "--conditional" in flags else not kept.exists()


def test_codebook_usage_needs_perplexity(tmp_path):
    from numpyvae.training import plots

    with pytest.raises(ValueError, match="val_perplexity"):
        plots.plot_codebook_usage({"epoch": [1]}, 8, tmp_path / "x.png")
