"""What the command does when things go wrong around it: a FIFO for a checkpoint, a full disk,
a read-only folder, a second run racing into the same --out, SIGTERM and SIGHUP, an
abbreviated option, a data set that contradicts a preset. Each ends in one line that says what
is wrong and how to go on, and loses no file."""
from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from numpyvae.cli import main
from numpyvae.cli.main import build_parser
from numpyvae.teaching import cli as teaching_cli
from numpyvae.training import checkpoint as ck
from numpyvae.training import rundir

REPO = Path(__file__).resolve().parents[1]
TINY = ["--max-train", "200", "--epochs", "1", "--hidden", "16", "--z-dim", "2", "--no-progress"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                OPENBLAS_NUM_THREADS="1")


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("numpyvae: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------ option parsing
def _all_parsers(p: argparse.ArgumentParser):
    yield p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


@pytest.mark.parametrize("make", [build_parser, lambda: build_parser("burda2016-vae"), teaching_cli._parser])
def test_no_parser_matches_prefixes(make):
    parsers = list(_all_parsers(make()))
    assert len(parsers) >= 4 and all(p.allow_abbrev is False for p in parsers)


def test_an_abbreviated_option_is_an_error(tmp_path, capsys):
    assert main(["train", "--resum", "--out", str(tmp_path / "r")]) == 2
    assert "--resum" in _one_error_line(capsys.readouterr().err)
    assert main(["assignment", "make", str(tmp_path / "kit"), "--exercis", "vae_backward"]) == 2
    assert not (tmp_path / "kit").exists() and not (tmp_path / "r").exists()


def test_a_data_set_that_contradicts_the_preset_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--preset", "kingma2014-frey", "--dataset", "mnist-embedded", "--likelihood", "bernoulli",
                 "--out", str(out)] + TINY) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--dataset mnist-embedded" in line and "kingma2014-frey" in line and "frey" in line
    assert not out.exists()


# ------------------------------------------------------------------------------ special files
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
@pytest.mark.parametrize("command", ["evaluate", "resume", "train"])
def test_a_fifo_named_checkpoint_is_refused_not_read(tmp_path, command):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "checkpoint.npz")
    argv = {"evaluate": ["evaluate", str(run / "checkpoint.npz")],
            "resume": ["train", "--resume", "--out", str(run), "--no-progress"],
            "train": ["train", "--out", str(run)] + TINY}[command]
    try:
        done = subprocess.run([sys.executable, "-m", "numpyvae", *argv], env=_env(), capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"numpyvae {' '.join(argv)} blocked on the named pipe")
    assert done.returncode == 2
    says = "cannot be read" if command == "train" else "is a named pipe (FIFO), not a regular file"
    assert says in _one_error_line(done.stderr)
    assert (run / "checkpoint.npz").is_fifo()


# ------------------------------------------------------------------------------ full disk, read-only folder
def test_a_full_disk_names_the_file_and_the_command_to_continue(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    real = ck.atomic_write
    writes = {"n": 0}

    def full_on_the_second_checkpoint(path, write):
        if os.fspath(path).endswith("checkpoint.npz"):
            writes["n"] += 1
            if writes["n"] >= 2:
                def no_space(fh):
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real(path, no_space)
        return real(path, write)

    monkeypatch.setattr(ck, "atomic_write", full_on_the_second_checkpoint)
    assert main(["train", "--out", str(out)] + TINY[:-3] + ["--epochs", "3", "--no-progress"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no space left" in line and str(out / "checkpoint.npz") in line
    assert f"numpyvae train --resume --out {out}" in line
    assert ck.load(out / "checkpoint.npz").epoch <= 1          # the last good one, intact
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


@pytest.fixture
def read_only_dir(tmp_path):
    """An existing folder no one may write into: a read-only tmpfs for root, else chmod 555."""
    d = tmp_path / "ro"
    d.mkdir()
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)],
                                 capture_output=True).returncode == 0
    else:
        d.chmod(0o555)
    if os.access(d, os.W_OK) and not mounted:
        pytest.skip("cannot make a folder read-only here")
    yield d
    if mounted:
        subprocess.run(["umount", str(d)], capture_output=True)
    else:
        d.chmod(0o755)


def test_a_read_only_out_says_the_folder_is_not_writable(read_only_dir, capsys):
    assert main(["train", "--out", str(read_only_dir)] + TINY) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"the folder {read_only_dir} is not writable" in line and "--out" in line and "lock" not in line


# ------------------------------------------------------------------------------ two runs, one --out
@pytest.mark.slow
def test_a_run_that_finishes_in_out_meanwhile_is_not_replaced(tmp_path, monkeypatch, capsys):
    """B looks at --out (nothing there), A runs there from start to finish, then B takes the
    lock: B must refuse, and A's finished run must stay as it was."""
    out = tmp_path / "r"
    real_acquire = rundir.RunLock.acquire
    state = {"other_ran": False, "inside": False}

    def acquire(self):
        if not state["other_ran"] and not state["inside"]:
            state["inside"] = True
            assert main(["train", "--out", str(out), "--seed", "5"] + TINY) == 0   # run A
            state["inside"], state["other_ran"] = False, True
        return real_acquire(self)

    monkeypatch.setattr(rundir.RunLock, "acquire", acquire)
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--seed", "6"] + TINY) == 2           # run B
    assert state["other_ran"]
    assert "holds a finished run" in _one_error_line(capsys.readouterr().err)
    assert ck.load(out / "checkpoint.npz").train_config["seed"] == 5


# ------------------------------------------------------------------------------ SIGTERM, SIGHUP
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("sig,threads", [("SIGTERM", "1"), ("SIGHUP", "1"), ("SIGTERM", "2")])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path, sig, threads):
    out = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "numpyvae", "train", "--out", str(out), "--max-train", "300",
                          "--hidden", "8", "--z-dim", "2", "--epochs", "100000", "--threads", threads,
                          "--no-progress"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        try:
            if ck.load(out / "checkpoint.npz").epoch >= 1:
                break
        except ck.CheckpointError:
            pass
        time.sleep(0.05)
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + getattr(signal, sig), err
    assert "Traceback" not in err and f"stopped by {sig}" in err
    assert f"to continue: numpyvae train --resume --out {out}" in err
    assert ck.load(out / "checkpoint.npz").epoch >= 1
    for name in ("history.csv", "loss_curves.png", "samples.png"):
        assert (out / name).is_file(), (name, sorted(os.listdir(out)), err[-600:])
    assert not (out / ".lock").exists()
