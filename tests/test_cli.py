"""The numpyvae command: an end-to-end tiny run, evaluate, gradcheck, and clean argument errors."""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from numpyvae.cli import main
from numpyvae.cli.main import build_parser
from numpyvae.data import load_dataset
from numpyvae.training import checkpoint as ck
from numpyvae.training import liveness
from numpyvae.training.trainer import HISTORY_COLUMNS, Trainer, TrainingDiverged

from _helpers import frey_bytes

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


@pytest.mark.slow
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


def test_train_loads_matplotlib_only_for_the_figures(tmp_path):
    """matplotlib is about 40 MB of resident memory that training does not use: ``numpyvae
    train`` imports it after the last epoch, to draw the figures (in a fresh process, since
    this one has it already)."""
    code = f"""
import json, sys
from numpyvae.cli import main
from numpyvae.training import trainer
seen, fit = [], trainer.Trainer.fit
def watched(self, *a, **kw):
    seen.append("matplotlib" in sys.modules)
    out = fit(self, *a, **kw)
    seen.append("matplotlib" in sys.modules)
    return out
trainer.Trainer.fit = watched
rc = main({["train", "--out", str(tmp_path / "run")] + TINY!r})
print(json.dumps(dict(rc=rc, seen=seen, after="matplotlib" in sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"rc": 0, "seen": [False, False], "after": True}
    assert _is_png(tmp_path / "run" / "samples.png")


def test_train_lets_the_training_rows_go_before_the_figures(tmp_path, monkeypatch, capsys):
    """With a validation split the figures read only its rows, so the training rows are freed
    before matplotlib loads and the figures are drawn: drawing does not add to the run's peak."""
    import weakref

    from numpyvae.training import plots, trainer
    rows, alive, init, draw = [], [], trainer.Trainer.__init__, plots.make_figures

    def keep(self, vae, x_train, *a, **kw):
        rows.append(weakref.ref(x_train))
        init(self, vae, x_train, *a, **kw)

    def figures(*a, **kw):
        alive.append(rows[0]() is not None)
        return draw(*a, **kw)
    monkeypatch.setattr(trainer.Trainer, "__init__", keep)
    monkeypatch.setattr(plots, "make_figures", figures)
    assert main(["train", "--out", str(tmp_path / "run")] + TINY) == 0
    assert alive == [False]
    assert "[300 train / 1000 val]" in capsys.readouterr().out
    assert _is_png(tmp_path / "run" / "samples.png")


@pytest.mark.slow
def test_train_summary_is_printed(tmp_path, capsys):
    rc = main(["train", "--out", str(tmp_path / "r"), "--z-dim", "3", "--hidden", ""] + TINY[:4] + ["--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "validation negative ELBO" in out and "KL" in out and str(tmp_path / "r") in out
    assert not (tmp_path / "r" / "manifold.png").exists()  # only for z_dim = 2


@pytest.mark.slow
def test_resume_extends_the_history(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]
    assert ck.load(out / "checkpoint.npz").extra["n_train"] == 300


@pytest.mark.slow
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


@pytest.mark.slow
def test_python_dash_m_and_help():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "numpyvae", "--help"], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0 and "train" in r.stdout and "evaluate" in r.stdout
    r = subprocess.run([sys.executable, "-m", "numpyvae", "train", "--batch-size", "-5"], capture_output=True,
                       text=True, env=env, cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("numpyvae: error:") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------ no run is ever lost
@pytest.mark.slow
def test_each_run_gets_a_fresh_directory_and_latest_points_at_the_newest(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--seed", "1"] + TINY) == 0
    assert main(["train", "--seed", "2"] + TINY) == 0
    runs = sorted(p for p in os.listdir("runs") if p != "latest")
    # two runs in the same second get a "-2" suffix rather than sharing a directory
    assert len(runs) == 2 and all(re.search(r"-mnist-embedded(-\d+)?$", r) for r in runs)
    assert all((tmp_path / "runs" / r / "checkpoint.npz").is_file() for r in runs)
    newest = ck.load("runs/latest/checkpoint.npz")  # the README's path, literally
    assert newest.train_config["seed"] == 2
    capsys.readouterr()
    assert main(["evaluate", "runs/latest/checkpoint.npz", "--max-examples", "50"]) == 0
    assert main(["train", "--resume", "--epochs", "2", "--no-progress"]) == 0  # resumes the newest run
    assert ck.load("runs/latest/checkpoint.npz").epoch == 2
    assert ck.load(f"runs/{runs[0]}/checkpoint.npz").epoch == 1  # the other run untouched


@pytest.mark.slow
def test_out_on_a_finished_run_needs_force_or_resume(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--seed", "5"] + TINY) == 2
    err = capsys.readouterr().err
    assert "finished run (1 epochs)" in err and "--force" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "checkpoint.npz").read_bytes() == before
    assert main(["train", "--out", str(out), "--seed", "5", "--force"] + TINY) == 0
    assert ck.load(out / "checkpoint.npz").train_config["seed"] == 5
    assert "removed the previous run's files" in capsys.readouterr().err


@pytest.mark.slow
def test_a_directory_in_use_is_locked(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = liveness.identity(sleeper.pid)   # what a run writes into its lock
        (out / ".lock").write_text(f"{sleeper.pid}\n{json.dumps(holder)}\n")
        assert main(["train", "--out", str(out)] + TINY) == 2
        err = capsys.readouterr().err
        assert "in use by another numpyvae process" in err and str(sleeper.pid) in err
        assert not (out / "checkpoint.npz").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(["train", "--out", str(out)] + TINY) == 0  # the owner died: stale lock taken over
    assert "taking over the stale lock" in capsys.readouterr().err
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_two_concurrent_trainings_into_one_out(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1")
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "numpyvae", "train", "--out", str(out), "--max-train", "200", "--hidden", "8",
            "--no-progress"]
    first = subprocess.Popen(argv + ["--epochs", "200"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.time() + 60
        while not (out / "checkpoint.npz").exists() and time.time() < deadline:
            time.sleep(0.05)
        second = subprocess.run(argv + ["--epochs", "1"], env=env, capture_output=True, text=True)
        assert second.returncode == 2
        assert "in use by another numpyvae process" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.kill()
        first.communicate()


@pytest.mark.slow
def test_resume_refuses_options_that_contradict_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 0
    capsys.readouterr()
    rc = main(["train", "--out", str(out), "--resume", "--epochs", "3", "--z-dim", "5", "--seed", "4",
               "--hidden", "16", "--likelihood", "gaussian"])
    assert rc == 2
    err = capsys.readouterr().err
    for piece in ("--z-dim 5 (the run has 20)", "--seed 4 (the run has 0)", "--hidden 16 (the run has 32)",
                  "--likelihood gaussian (the run has bernoulli)", "4 option(s)"):
        assert piece in err, piece
    assert ck.load(out / "checkpoint.npz").epoch == 1
    # options equal to the run's are not conflicts
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--z-dim", "20", "--hidden", "32",
                 "--no-progress"]) == 0


@pytest.mark.slow
def test_resume_applies_and_records_a_new_learning_rate(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--lr", "0.01", "--no-progress"]) == 0
    assert "lr 0.001 -> 0.01" in capsys.readouterr().err
    c = ck.load(out / "checkpoint.npz")
    assert c.train_config["lr"] == 0.01
    assert c.extra["resumes"][-1]["changed"] == {"lr": [0.001, 0.01], "epochs": [1, 2]}
    with open(out / "history.csv", newline="") as fh:
        assert [float(r["lr"]) for r in csv.DictReader(fh)] == [0.001, 0.01]


@pytest.mark.slow
def test_resume_on_a_finished_run_says_there_is_nothing_to_do(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume"]) == 0
    text = capsys.readouterr().out
    assert "nothing to do" in text and "--epochs 11" in text and f"--out {out}" in text
    assert (out / "checkpoint.npz").read_bytes() == before


def test_divergence_keeps_history_and_prints_the_resume_command(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["train", "--out", str(out), "--lr", "1e3"] + TINY) == 1
    err = capsys.readouterr().err
    assert "diverged at step" in err and "although every parameter is finite" in err
    assert f"numpyvae train --resume --out {out} --lr 0.001" in err
    assert (out / "history.csv").read_text().startswith("epoch,step,beta,lr")
    assert ck.load(out / "checkpoint.npz").epoch == 0


def _stop_in_epoch(monkeypatch, epoch, exc):
    orig = Trainer._step

    def step(self, xb, yb, beta, prepare=None):
        if self.epoch + 1 == epoch:
            if exc is KeyboardInterrupt:
                raise KeyboardInterrupt
            self.vae.params["dec.out.W"][0, 0] = np.nan
        return orig(self, xb, yb, beta, prepare)

    monkeypatch.setattr(Trainer, "_step", step)


@pytest.mark.slow
@pytest.mark.parametrize("exc,code", [(KeyboardInterrupt, 130), (TrainingDiverged, 1)])
def test_interrupt_or_divergence_saves_the_last_finished_epoch(tmp_path, monkeypatch, capsys, exc, code):
    out = tmp_path / "r"
    _stop_in_epoch(monkeypatch, 2, exc)
    assert main(["train", "--out", str(out), "--max-train", "300", "--epochs", "3", "--hidden", "32",
                 "--no-progress"]) == code
    err = capsys.readouterr().err
    assert f"numpyvae train --resume --out {out}" in err and str(out / "checkpoint.npz") in err
    assert "epoch 1 of 3" in err
    assert ck.load(out / "checkpoint.npz").epoch == 1
    with open(out / "history.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1]
    assert _is_png(out / "loss_curves.png") and _is_png(out / "samples.png")
    if exc is TrainingDiverged:
        assert "'dec.out.W'" in err
    monkeypatch.undo()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert ck.load(out / "checkpoint.npz").epoch == 3


@pytest.mark.slow
def test_sigint_in_a_real_process_exits_130_and_saves(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1")
    out = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "numpyvae", "train", "--out", str(out), "--max-train", "300",
                          "--hidden", "8", "--epochs", "100000", "--no-progress"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if ck.load(out / "checkpoint.npz").epoch >= 1:
                break
        except ck.CheckpointError:
            pass
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and f"numpyvae train --resume --out {out}" in err
    assert ck.load(out / "checkpoint.npz").epoch >= 1 and (out / "history.csv").is_file()
    assert not (out / ".lock").exists()


# ------------------------------------------------------------------------ no raw tracebacks
@pytest.mark.parametrize("argv,says", [
    (["--z-dim", "1000000000"], "--z-dim up to"),
    (["--hidden", "1000000000"], "hidden layers of up to"),
    (["--hidden", "400,1000000000"], "hidden layers of up to"),
    (["--k", "1000000"], "--k up to"),
])
def test_a_model_too_large_for_this_machine_is_refused_before_allocating(tmp_path, capsys, argv, says):
    rc = main(["train", "--out", str(tmp_path / "o"), "--no-progress"] + argv)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("numpyvae: error: ") and "available" in err and says in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_evaluate_with_a_huge_k_is_refused(tiny_run, capsys):
    _, out = tiny_run
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.npz"), "--k", "10000000"]) == 2
    assert "--k up to" in capsys.readouterr().err


def test_out_naming_an_existing_file(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert main(["train", "--out", str(f)] + TINY) == 2
    err = capsys.readouterr().err
    assert "existing file, not a directory" in err and len(err.strip().splitlines()) == 1
    assert f.read_text() == "mine"


@pytest.mark.slow
def test_evaluate_refuses_a_checkpoint_with_a_nan_parameter(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 0
    path = out / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    w = arrays["param/enc.0.W"].copy()
    w[3, 4] = np.nan
    arrays["param/enc.0.W"] = w
    np.savez(path, **arrays)
    capsys.readouterr()
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'enc.0.W' has 1 non-finite value" in err and "nats" not in err
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 2
    assert "non-finite" in capsys.readouterr().err


def test_a_text_file_as_checkpoint_says_what_it_is(tmp_path, capsys):
    p = tmp_path / "checkpoint.npz"
    p.write_text("hello\n")
    assert main(["evaluate", str(p)]) == 2
    err = capsys.readouterr().err
    assert "a text file (6 bytes" in err and "allow_pickle" not in err


# ------------------------------------------------------------------------ what a new user sees
@pytest.mark.slow
def test_epoch_lines_stay_with_no_progress_and_no_bar_off_a_terminal(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "a")] + TINY) == 0
    err = capsys.readouterr().err
    assert "epoch   1/1" in err
    # without --no-progress, stderr here is not a terminal: still only the epoch lines, no bar
    assert main(["train", "--out", str(tmp_path / "b"), "--max-train", "300", "--epochs", "1", "--hidden", "32"]) == 0
    err = capsys.readouterr().err
    assert "epoch   1/1" in err and "\r" not in err and "batch/s" not in err and "it/s" not in err


@pytest.mark.slow
def test_the_blas_choice_is_printed_and_recorded(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "a"), "--threads", "1"] + TINY) == 0
    err = capsys.readouterr().err
    assert "BLAS: " in err and "1 thread (--threads)" in err
    blas = ck.load(tmp_path / "a" / "checkpoint.npz").extra["blas"]
    assert blas["threads"] == 1 and blas["request"] == 1
    assert main(["train", "--out", str(tmp_path / "b"), "--threads", "0"] + TINY) == 2


def test_help_lists_commands_options_and_data_sets():
    text = build_parser().format_help()
    for piece in ("train", "evaluate", "gradcheck", "assignment", "--epochs", "--resume", "--force", "--threads",
                  "--iw-k", "two-moons", "fashion-mnist", "frey", "binarized-mnist", "mnist-embedded"):
        assert piece in text, piece


def test_every_option_has_help():
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("train", "gradcheck", "evaluate"):
        for action in subs.choices[name]._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}"


def test_evaluate_without_a_data_directory_speaks_cli(tiny_run, monkeypatch, capsys):
    _, out = tiny_run
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.npz"), "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "NUMPYVAE_DATA" in err and "data_dir=" not in err


@pytest.mark.slow
def test_mnist_training_needs_no_test_files(tmp_path, shared_file, capsys):
    data = tmp_path / "data" / "mnist"
    data.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        os.symlink(shared_file(f"mnist/{name}"), data / name)
    ds = load_dataset("mnist", data_dir=str(tmp_path / "data"), test=False)
    assert ds.x_test is None and "test split not loaded" in ds.description
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "r"),
                 "--max-train", "200", "--epochs", "1", "--hidden", "8", "--no-progress"]) == 0
    capsys.readouterr()
    # evaluating on the test split does need them, and says which file is missing
    assert main(["evaluate", str(tmp_path / "r" / "checkpoint.npz"), "--data-dir", str(tmp_path / "data")]) == 2
    assert "t10k" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_to_continue_names_the_data_directory(tmp_path, capsys, monkeypatch):
    """A run that read its files through --data-dir, stopped by --time-limit, prints a command that
    continues it as printed: the checkpoint records the data set, not where its files are."""
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)
    (tmp_path / "my data" / "frey").mkdir(parents=True)
    faces = np.random.default_rng(0).integers(0, 256, (1965, 28, 20), dtype=np.uint8)
    (tmp_path / "my data" / "frey" / "frey_rawface.mat").write_bytes(frey_bytes(faces))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "frey", "--data-dir", str(tmp_path / "my data"), "--out", str(out),
                 "--likelihood", "gaussian", "--hidden", "8", "--z-dim", "2", "--epochs", "3",
                 "--time-limit", "1e-6", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert ck.load(out / "checkpoint.npz").epoch == 1
    cmd = shlex.split(err.split("to continue: ")[1].splitlines()[0])
    assert cmd[:3] == ["numpyvae", "train", "--resume"]
    assert cmd[cmd.index("--data-dir") + 1] == str(tmp_path / "my data")
    assert main(cmd[1:] + ["--no-progress"]) == 0
    assert ck.load(out / "checkpoint.npz").epoch == 3


@pytest.mark.slow
def test_more_things_a_new_user_tries(tmp_path, tiny_run, capsys):
    assert main(["train", "--out", ""] + TINY) == 2
    assert "--out: expected a directory name" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "--out", str(blocker / "sub")] + TINY) == 2
    err = capsys.readouterr().err
    assert "cannot create the run directory" in err and len(err.strip().splitlines()) == 1
    # a 23-digit seed is a valid seed (not "invalid parse value")
    assert main(["train", "--out", str(tmp_path / "s"), "--seed", "99999999999999999999999"] + TINY) == 0
    _, out = tiny_run
    capsys.readouterr()
    assert main(["evaluate", str(out), "--max-examples", "20"]) == 0  # a run directory stands for its checkpoint
    assert "negative ELBO" in capsys.readouterr().out


def test_a_resume_reads_the_checkpoint_once(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out)] + TINY) == 0
    reads = []
    load = ck.load

    def counting(path):
        reads.append(os.fspath(path))
        return load(path)
    monkeypatch.setattr(ck, "load", counting)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert reads == [str(out / "checkpoint.npz")]
