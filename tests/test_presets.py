"""The papers' protocols as presets: their data, the lr schedule, the CLI flag, the L_5000
evaluation's memory and progress, and a clear error when the IWAE objective is missing."""
from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.cli.main import TRAIN_DEFAULTS, build_parser, main
from numpyvae.theory.estimators import log_likelihood
from numpyvae.training import presets
from numpyvae.training.trainer import TrainConfig, Trainer


def test_burda_schedule_is_3_to_the_i_epochs_at_decaying_rates():
    lrs = [presets.burda2016_lr(e) for e in range(presets.BURDA_EPOCHS)]
    assert len(lrs) == 3280
    # pass i lasts 3^i epochs at 1e-3 * 10^(-i/7)
    start = 0
    for i in range(8):
        block = lrs[start:start + 3 ** i]
        assert len(block) == 3 ** i
        np.testing.assert_allclose(block, 1e-3 * 10 ** (-i / 7), rtol=1e-12)
        start += 3 ** i
    assert presets.burda2016_lr(10 ** 6) == pytest.approx(1e-4)   # the last rate stays
    assert presets.lr_at_epoch(None, 0.5, 99) == 0.5
    with pytest.raises(ValueError, match="lr_schedule"):
        presets.lr_at_epoch("cosine", 1e-3, 0)


def test_each_preset_reaches_the_train_options_and_its_epochs_follow_the_paper():
    """The preset's values become train's defaults (a flag given still wins), and the paper
    epochs are the papers' sample budgets over the training set, not numbers typed twice."""
    for name, p in presets.PRESETS.items():
        a = build_parser(name).parse_args(["train", "--preset", name])
        assert {k: getattr(a, k) for k in p.cli} == p.cli, name
        assert build_parser(name).parse_args(["train", "--preset", name, "--epochs", "3"]).epochs == 3
    # Kingma & Welling follow the bound up to 10^8 training samples (Figure 2)
    assert presets.get_preset("kingma2014-mnist").paper_epochs == round(1e8 / 50_000)
    assert presets.get_preset("kingma2014-frey").paper_epochs == round(1e8 / 1765)
    # Burda et al.: 3^i epochs at each of the 8 learning rates; the schedule ends with the epochs
    n = presets.get_preset("burda2016-vae").paper_epochs
    lrs = [presets.burda2016_lr(e) for e in range(n + 1)]
    assert len(set(lrs[:n])) == 8 and lrs[n - 1] != lrs[n - 1 - 3 ** 7] and lrs[n] == lrs[n - 1]
    with pytest.raises(ValueError, match="preset.*burda2016-vae"):
        presets.get_preset("burda2017")


def test_cli_preset_sets_defaults_and_flags_still_win():
    a = build_parser("burda2016-vae").parse_args(["train", "--preset", "burda2016-vae", "--epochs", "2"])
    assert a.hidden == (200, 200) and a.z_dim == 50 and a.batch_size == 20 and a.epochs == 2
    assert a.activation == "tanh" and a.binarize == "dynamic"
    plain = build_parser().parse_args(["train"])
    # without a preset an option not given stays None until _parse_train fills TRAIN_DEFAULTS in
    assert plain.preset is None and plain.batch_size is None
    assert TRAIN_DEFAULTS["batch_size"] == 100


def test_trainer_applies_the_lr_schedule_per_epoch_and_keeps_it_in_the_config():
    x = (np.random.default_rng(0).uniform(size=(8, 6)) < 0.5).astype(np.float32)
    cfg = presets.apply_preset_config("burda2016-vae", TrainConfig(epochs=0, batch_size=4, progress=False))
    assert cfg.lr_schedule == "burda2016" and cfg.optimizer_kwargs["eps"] == 1e-4
    assert TrainConfig.from_dict(cfg.to_dict()).lr_schedule == "burda2016"   # survives checkpoints
    tr = Trainer(nv.VAE(6, 2, hidden=(4,), seed=0, dtype=np.float32), x, None, cfg)
    seen = []
    tr.fit(5, callbacks=[lambda t, row: seen.append(t.optimizer.lr)])
    np.testing.assert_allclose(seen, [1e-3 * 10 ** (-i / 7) for i in (0, 1, 1, 1, 2)], rtol=1e-12)
    np.testing.assert_allclose(tr.history["lr"], seen, rtol=1e-12)     # the history records the rate used
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")


def test_log_likelihood_reports_progress_and_matches_the_silent_run():
    vae = nv.VAE(10, 2, hidden=(6,), seed=0)
    x = (np.random.default_rng(1).uniform(size=(25, 10)) < 0.5).astype(float)
    calls = []
    a = log_likelihood(vae, x, k=40, batch_size=10, rng=3, progress=lambda d, n, s: calls.append((d, n, s)))
    b = log_likelihood(vae, x, k=40, batch_size=10, rng=3)
    np.testing.assert_array_equal(a, b)
    assert [c[:2] for c in calls] == [(10, 25), (20, 25), (25, 25)]
    assert all(s2 >= s1 >= 0 for (_, _, s1), (_, _, s2) in zip(calls, calls[1:]))
    with pytest.raises(TypeError, match="progress"):
        log_likelihood(vae, x, k=2, progress="yes")


@pytest.mark.slow
def test_log_likelihood_memory_is_bounded_by_max_floats_not_by_k():
    """K = 3000 samples of 40 examples would be 9.4e7 floats at once; chunks keep it small."""
    vae = nv.VAE(784, 5, hidden=(20,), seed=0)
    x = (np.random.default_rng(2).uniform(size=(40, 784)) < 0.2).astype(float)
    tracemalloc.start()
    log_likelihood(vae, x, k=3000, batch_size=20, rng=0, max_floats=200_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 12 * 200_000 * 8, peak            # a few chunk-sized float64 buffers
    assert peak < 3000 * 40 * 784 * 8 / 50          # far below the unchunked need


def test_preset_evaluation_prints_progress_time_and_the_papers_number():
    vae = nv.VAE(784, 3, hidden=(8,), seed=0)
    x = (np.random.default_rng(3).uniform(size=(30, 784)) < 0.2).astype(float)
    out = io.StringIO()
    res = presets.evaluate_preset("burda2016-vae", vae, x, k=20, epoch_seconds=2.0, epochs_done=1, out=out)
    text = out.getvalue()
    assert "L_20: 30/30 images" in text and "86.76" in text and "3280" in text
    assert res["projected_seconds"] == pytest.approx(2.0 * 3280)
    assert res["neg_log_px"] > 0 and res["n"] == 30


@pytest.mark.slow
def test_cli_preset_runs_briefly(tmp_path, capsys):
    """A two-epoch burda2016-vae run on 200 shipped MNIST images with a small evaluation."""
    out = tmp_path / "run"
    code = main(["train", "--preset", "burda2016-vae", "--dataset", "mnist-embedded", "--max-train", "200",
                 "--epochs", "2", "--preset-eval-k", "10", "--preset-eval-n", "20", "--no-progress",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "preset burda2016-vae: -log p(x)" in err and "L_10" in err and "--resume" in err
    # the numbers and the curve against the paper stay beside the checkpoint
    rep = json.loads((out / "preset.json").read_text())
    assert rep["preset"] == "burda2016-vae" and rep["k"] == 10 and rep["n"] == 20 and rep["epochs_done"] == 2
    assert rep["reference"] == 86.76 and rep["neg_log_px"] > 0 and rep["train_seconds"] > 0
    assert (out / "preset_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_preset_run_with_a_time_limit_stops_evaluates_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "kingma2014-mnist", "--dataset", "mnist-embedded", "--binarize", "fixed",
            "--hidden", "50", "--max-train", "300", "--no-progress", "--out", str(out)]
    # 1e-9 minutes (60 ns) is shorter than any epoch, so the first epoch is the first to end after it
    # (0.001 minutes, 60 ms, is longer than a 300-example epoch: the run went on to epoch 2)
    assert main(args + ["--epochs", "50", "--time-limit", "1e-9"]) == 0
    err = capsys.readouterr().err
    assert "stopped after epoch 1 of 50" in err and "numpyvae train --resume --out" in err
    rep = json.loads((out / "preset.json").read_text())
    assert rep["epochs_done"] == 1 and rep["paper_epochs"] == 2000 and rep["projected_seconds"] > 0
    assert (out / "preset_curve.png").exists() and (out / "history.csv").read_text().count("\n") == 2
    assert main(["train", "--resume", "--epochs", "2", "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "preset.json").read_text())["epochs_done"] == 2
