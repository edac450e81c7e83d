"""The run directory of ``numpyvae train``: what a would-be ``--out`` holds, the checks before a
run may write there, the run ``--resume`` continues (and the options that contradict it), and
the command that continues a run.

A run never replaces another one unless asked: without ``--out`` each run gets a fresh
directory ``runs/<timestamp>-<dataset>`` and ``runs/latest`` points at the newest; ``--out``
on a directory that holds a run needs ``--resume`` (continue it) or ``--force`` (replace it);
a directory in use by another training is locked.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

import numpy as np

from ..training import checkpoint as ck
from ..training import rundir
from .common import say
from .errors import CLIError
from .parser import RESUME_MAY_CHANGE

__all__ = ["RUNS_ROOT", "DEFAULT_OUT", "RUN_FILES", "resume_command", "open_run_to_resume", "check_out_is_free"]

RUNS_ROOT = "runs"
DEFAULT_OUT = os.path.join(RUNS_ROOT, rundir.LATEST)
# the files a training run writes; --force removes exactly these before starting over
RUN_FILES = ("checkpoint.npz", "checkpoint.json", "history.csv", "history.json", "loss_curves.png",
             "reconstructions.png", "samples.png", "latent.png", "manifold.png", "toy.png",
             "preset.json", "preset_curve.png", "class_samples.png", "codebook_usage.png")


def _run_dir_state(out: str) -> tuple[str, int | None, int | None]:
    """('empty' | 'files' | 'run', finished epochs, planned epochs) of a would-be --out."""
    names = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
    if not names:
        return "empty", None, None
    path = os.path.join(out, "checkpoint.npz")
    if not os.path.exists(path):
        return "files", None, None
    try:
        c = ck.load(path)
    except ck.CheckpointError:
        return "run", None, None
    return "run", c.epoch, int(c.train_config.get("epochs", c.epoch))


def resume_command(out: str, data_dir: str | None, **more: Any) -> str:
    """The command that continues the run in ``out``. A run that read its data through
    ``--data-dir`` names it again: the checkpoint records the data set, not where its files are."""
    more = {"data_dir": data_dir, **more}
    tail = "".join(f" --{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in more.items() if v is not None)
    return f"numpyvae train --resume --out {shlex.quote(out)}{tail}"


def _resume_conflicts(a: argparse.Namespace, given: set[str], c: ck.Checkpoint) -> list[str]:
    """Every option typed on the command line that contradicts the checkpoint ``c``."""
    m, tc, ex = c.model_config, c.train_config, c.extra
    saved: dict[str, Any] = {
        "dataset": ex.get("dataset"), "z_dim": m.get("z_dim"), "hidden": tuple(m.get("hidden", ())),
        "activation": m.get("activation"), "likelihood": m.get("likelihood"), "c": m.get("c"),
        "dtype": m.get("dtype"), "seed": tc.get("seed"), "k": tc.get("k"), "kl": tc.get("kl"),
        "beta": tc.get("beta"), "warmup_epochs": tc.get("warmup_epochs"), "batch_size": tc.get("batch_size"),
        "optimizer": tc.get("optimizer"), "max_train": ex.get("max_train"),
        "binarize": ex.get("binarize") or "none",
        "objective": m.get("objective", "elbo"), "posterior": m.get("posterior", "diag"),
        "model": m.get("model") if m.get("model") in ("vqvae", "conv") else "vae",
        "conditional": bool(m.get("n_classes")),
        "channels": tuple(m["channels"]) if "channels" in m else None, "kernel_size": m.get("kernel_size"),
        "stride": m.get("stride"), "padding": m.get("padding"),
        "n_codes": m.get("n_codes"), "code_dim": m.get("code_dim"), "codebook_size": m.get("codebook_size"),
        "commitment": m.get("beta") if m.get("model") == "vqvae" else None,
        "prior": m.get("prior", "normal"),
    }
    out = []
    for key in sorted(given - set(RESUME_MAY_CHANGE)):
        have, want = saved.get(key), getattr(a, key)
        if key == "binarize" and want == "auto":
            continue
        if key == "likelihood" and want is None:
            continue
        same = (np.isclose(float(have), float(want), rtol=1e-12, atol=0)
                if isinstance(want, float) and have is not None else have == want)
        if not same:
            shown = ",".join(map(str, want)) if key == "hidden" else want
            had = ",".join(map(str, have)) if key == "hidden" and have is not None else have
            out.append(f"--{key.replace('_', '-')} {shown} (the run has {had})")
    return out


def open_run_to_resume(a: argparse.Namespace, given: set[str],
                       held: list[rundir.RunLock]) -> tuple[str, ck.Checkpoint, int] | None:
    """Lock and read the run ``--resume`` continues; check the options against it.

    Returns (run directory, checkpoint, epochs in total), or None when the run has finished its
    epochs already (after saying so and how to train further).
    """
    if a.force:
        raise CLIError("--force and --resume contradict each other: --resume continues the run in --out, "
                       "--force replaces it")
    out = rundir.resolve(a.out or DEFAULT_OUT)
    if os.path.islink(out.rstrip(os.sep)):  # name the run itself, not the moving runs/latest
        out = os.path.join(os.path.dirname(out.rstrip(os.sep)), os.readlink(out.rstrip(os.sep)))
    ckpt_path = os.path.join(out, "checkpoint.npz")
    if not os.path.exists(ckpt_path):
        where = "" if a.out else " (the newest run; pass --out DIR for another)"
        raise CLIError(f"--resume: no checkpoint at {ckpt_path}{where}")
    held.append(rundir.RunLock(out, say=say).acquire())  # before reading: no one else is writing it
    saved = ck.load(ckpt_path)  # validated: finite, dtypes and shapes as recorded
    conflicts = _resume_conflicts(a, given, saved)
    if conflicts:
        raise CLIError(f"--resume: {len(conflicts)} option(s) contradict the checkpoint {ckpt_path}: "
                       + "; ".join(conflicts) + ". Drop them to continue the run (only --epochs, --lr and "
                       "--threads may change), or start a new run without --resume")
    total = a.epochs if "epochs" in given else int(saved.train_config.get("epochs", saved.epoch))
    if saved.epoch >= total:
        further = resume_command(out, a.data_dir, epochs=saved.epoch + 10)
        if saved.epoch > total:
            raise CLIError(f"--resume: --epochs {total} is fewer than the {saved.epoch} epochs the run in {out} "
                           f"has already finished; to train further: {further}")
        print(f"nothing to do: the run in {out} has finished its {saved.epoch} epochs; to train further: {further}")
        return None
    return out, saved, total


def check_out_is_free(out: str, force: bool, held: list[rundir.RunLock]) -> None:
    """Refuse an ``--out`` that is a file, is in use, or holds a run (unless ``--force``)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out {out} is an existing file, not a directory; choose another --out")
    if os.path.isdir(out) and not held:  # a training in progress there is the first thing to report
        held.append(rundir.RunLock(out, say=say).acquire())
    state, done, planned = _run_dir_state(out) if os.path.isdir(out) else ("empty", None, None)
    if state != "empty" and not force:
        if state == "files":
            what = "holds the files of a run (figures or history, no checkpoint)"
        elif done is not None and planned is not None and done >= planned:
            what = f"holds a finished run ({done} epochs)"
        elif done is not None:
            what = f"holds an unfinished run ({done} of {planned} epochs)"
        else:
            what = "holds a run whose checkpoint cannot be read"
        raise CLIError(f"--out {out} {what}; continue it with --resume (and --epochs N for more epochs), "
                       "replace it with --force, or choose another --out")

