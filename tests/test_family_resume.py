"""Every model kind through the one training path of the command line: exact continuation
after --resume, Ctrl-C and --time-limit, the same rules as the plain model (contradicting
options, nothing to do), the figures these runs write, and evaluate --iw-k through the one
importance-sampling estimator."""
from __future__ import annotations

import json

import numpy as np
import pytest

from numpyvae.cli.main import main
from numpyvae.training import checkpoint as ck

TINY = ["--max-train", "300", "--hidden", "32", "--no-progress"]
FAMILIES = [pytest.param(["--conditional"], id="conditional"),
            pytest.param(["--model", "vqvae", "--codebook-size", "8"], id="vqvae")]
KINDS = [pytest.param([], id="plain"),
         pytest.param(["--objective", "iwae", "--k", "2"], id="iwae"),
         pytest.param(["--posterior", "full"], id="full"), *FAMILIES]


def _train(out, flags, epochs):
    assert main(["train", *TINY, *flags, "--epochs", str(epochs), "--out", str(out)]) == 0


def _same_run(straight, resumed):
    a = ck.load(str(straight / "checkpoint.npz"))
    b = ck.load(str(resumed / "checkpoint.npz"))
    assert (a.epoch, a.step) == (b.epoch, b.step) == (2, 6)
    assert sorted(a.params) == sorted(b.params)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    for key in a.opt_state:
        assert np.array_equal(a.opt_state[key], b.opt_state[key]), key
    assert a.rng_states == b.rng_states
    history = (straight / "history.csv").read_text()
    assert history == (resumed / "history.csv").read_text() and len(history.splitlines()) == 3
    assert a.meta["model"] == b.meta["model"] and a.model_config == b.model_config
    assert [r["at_epoch"] for r in b.extra["resumes"]] == [1]
    assert b.build_optimizer() is not None


@pytest.mark.slow
@pytest.mark.parametrize("flags", KINDS)
def test_one_epoch_then_resume_equals_two_epochs_straight(tmp_path, capsys, flags):
    _train(tmp_path / "straight", flags, 2)
    _train(tmp_path / "resumed", flags, 1)
    assert main(["train", "--resume", "--epochs", "2", "--no-progress", "--out", str(tmp_path / "resumed")]) == 0
    _same_run(tmp_path / "straight", tmp_path / "resumed")


@pytest.mark.slow
@pytest.mark.parametrize("flags", FAMILIES)
def test_a_stopped_family_run_resumes_bit_for_bit(tmp_path, capsys, monkeypatch, flags):
    """--time-limit and Ctrl-C stop a --conditional / --model vqvae run on its last finished
    epoch and print the resume command; following it gives the uninterrupted run exactly."""
    from numpyvae.training import trainer as trainer_mod

    _train(tmp_path / "straight", flags, 2)
    limited = tmp_path / "limited"
    assert main(["train", *TINY, *flags, "--epochs", "2", "--time-limit", "1e-6", "--out", str(limited)]) == 0
    err = capsys.readouterr().err
    assert "stopped after epoch 1 of 2" in err
    command = err.split("to continue: ")[1].split()
    assert command[:3] == ["numpyvae", "train", "--resume"]
    assert main(command[1:] + ["--no-progress"]) == 0
    _same_run(tmp_path / "straight", limited)

    stopped = tmp_path / "stopped"
    fit = trainer_mod.Trainer._fit

    def interrupted(self, *args):      # Ctrl-C in the first step of epoch 2
        cbs = list(args[1]) + [lambda tr, row: (_ for _ in ()).throw(KeyboardInterrupt)]
        return fit(self, args[0], cbs, *args[2:])
    monkeypatch.setattr(trainer_mod.Trainer, "_fit", interrupted)
    assert main(["train", *TINY, *flags, "--epochs", "2", "--out", str(stopped)]) == 130
    err = capsys.readouterr().err
    assert "interrupted during epoch 2" in err and "to continue" in err
    monkeypatch.setattr(trainer_mod.Trainer, "_fit", fit)
    assert main(["train", "--resume", "--no-progress", "--out", str(stopped)]) == 0
    _same_run(tmp_path / "straight", stopped)


@pytest.mark.slow
@pytest.mark.parametrize("flags", KINDS)
def test_evaluate_iw_k_uses_the_one_estimator_for_every_kind(tmp_path, capsys, monkeypatch, flags):
    """evaluate --iw-k runs theory.estimators.log_likelihood on the model itself (its own
    posterior, the labels for a conditional model); a VQ-VAE, which samples nothing, is told so."""
    from numpyvae.cli import likelihood as cli_likelihood

    out = tmp_path / "run"
    _train(out, flags, 1)
    seen = []

    def spy(model, x, k, rng, y=None, **kwargs):
        ll = real(model, x, k=k, rng=rng, y=y, **kwargs)
        seen.append((type(model).__name__, k, y is not None, float(ll.mean())))
        return ll
    real = cli_likelihood.log_likelihood
    monkeypatch.setattr(cli_likelihood, "log_likelihood", spy)
    capsys.readouterr()
    code = main(["evaluate", str(out / "checkpoint.npz"), "--max-examples", "20", "--iw-k", "8"])
    said = capsys.readouterr()
    if "vqvae" in flags:
        assert code == 2 and not seen and "VQ-VAE" in said.err and len(said.err.splitlines()) == 1
        return
    assert code == 0
    (kind, k, labelled, mean), = seen
    assert k == 8 and labelled == ("--conditional" in flags)
    assert kind == ("VAE" if not flags else "FamilyVAE")
    assert f"K = 8: {mean:.2f} nats" in said.out


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
