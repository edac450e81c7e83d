"""Command line interface: ``numpyvae train | gradcheck | evaluate | assignment``.

``main(argv)`` is the console-script entry point (and ``python -m numpyvae``); it returns the
exit code instead of calling ``sys.exit``. Bad arguments or inputs (unknown data set,
non-positive sizes, missing data directory, unreadable checkpoint, a model too large for this
machine, an existing run in the way, ...) end with a single line ``numpyvae: error: ...`` on
stderr and exit code 2; a diverged training run exits with 1, as does a failed gradient check;
Ctrl-C exits with 130 after saving what there is. Set ``NUMPYVAE_DEBUG=1`` to see full
tracebacks instead.

A run never replaces another one unless asked: without ``--out`` each run gets a fresh
directory ``runs/<timestamp>-<dataset>`` and ``runs/latest`` points at the newest; ``--out``
on a directory that holds a run needs ``--resume`` (continue it) or ``--force`` (replace it);
a directory in use by another training is locked.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import __version__
from ..data import DATASETS, load_dataset
from ..gradcheck import check_model
from .. import _registry, _rng
from ..model import VAE
from ..teaching.cli import main as assignment_main
from ..theory.estimators import log_likelihood
from ..training import checkpoint as ck
from ..speed import Speed, heap, threads
from ..speed.split import MIN_ROWS, fork_available, split_sizes, uses_processes
from ..training import memory, plots, rundir
from ..training.presets import add_preset_arguments, apply_preset_config, cli_defaults, preset_epilogue
from ..training.trainer import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    TrainingStopped,
    _seed_streams,
    binarize_batch,
    evaluate,
)

__all__ = ["main", "build_parser", "build_model", "CLIError", "TRAIN_DEFAULTS"]

PROG = "numpyvae"
RUNS_ROOT = "runs"
DEFAULT_OUT = os.path.join(RUNS_ROOT, rundir.LATEST)
DEFAULT_EPOCHS = 30
TOY_SETS = ("two-moons", "gaussian-mixture", "pinwheel")
LIKELIHOOD_CHOICES = ("bernoulli", "gaussian", "gaussian_learned")
ACTIVATION_CHOICES = ("relu", "leaky_relu", "tanh", "sigmoid", "softplus", "identity")
OPTIMIZER_CHOICES = ("sgd", "momentum", "adagrad", "adam")
# the files a training run writes; --force removes exactly these before starting over
RUN_FILES = ("checkpoint.npz", "checkpoint.json", "history.csv", "history.json", "loss_curves.png",
             "reconstructions.png", "samples.png", "latent.png", "manifold.png", "toy.png",
             "preset.json", "preset_curve.png", "class_samples.png", "codebook_usage.png")
# share of the machine's available memory a run may plan to use
MEMORY_SHARE = 0.8

#: ``numpyvae train`` defaults. The parser's defaults are None so that ``--resume`` can tell
#: an option the user typed from one left at its default.
TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": "mnist-embedded", "z_dim": 20, "hidden": (400,), "activation": "relu", "likelihood": None,
    "c": 1.0, "k": 1, "kl": "closed", "beta": 1.0, "warmup_epochs": 0.0, "epochs": DEFAULT_EPOCHS,
    "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "seed": 0, "dtype": "float32", "binarize": "auto",
    "max_train": None, "threads": "auto", "out": None, "data_dir": None,
    # the model family (derivations/10_model_family.md)
    "model": "vae", "objective": "elbo", "posterior": "diag", "conditional": False,
    "n_codes": 8, "code_dim": 4, "codebook_size": 32, "commitment": 0.25,
}
# options that may differ from the checkpoint on --resume (applied and recorded)
RESUME_MAY_CHANGE = ("epochs", "lr", "threads", "out", "data_dir")


class CLIError(Exception):
    """A user-facing error: printed as one line ``numpyvae: error: <message>``, exit code 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block plus a message; we want exactly one line and exit 2.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


# ----------------------------------------------------------------------------------------------
# argument types
# ----------------------------------------------------------------------------------------------
def _number(cast: Callable[[str], Any], lower: float, strict: bool, what: str) -> Callable[[str], Any]:
    """An argparse type: ``cast(text)``, finite and above ``lower`` (or at least it if not strict)."""
    def parse(text: str) -> Any:
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        # math.isfinite(float(v)): a 30-digit integer is a valid seed, and too big for np.isfinite
        try:
            finite = math.isfinite(float(v))
        except OverflowError:
            finite = cast is int
        if not finite or v < lower or (strict and v == lower):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v
    return parse


_positive_int = _number(int, 0, True, "a positive integer")
_nonneg_int = _number(int, 0, False, "a non-negative integer")
_positive_float = _number(float, 0.0, True, "a positive number")
_nonneg_float = _number(float, 0.0, False, "a non-negative number")


def _hidden(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text == "":
        return ()
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated positive layer sizes like '400' or '200,200' (or '' for none), got {text!r}"
            ) from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
        out.append(v)
    return tuple(out)


def _threads(text: str) -> str | int:
    if text == "auto":
        return "auto"
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return v


# ----------------------------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------------------------
def _overview() -> str:
    sets = "\n".join(f"  {name:<17} {desc}" for name, desc in DATASETS.items())
    return f"""commands (numpyvae COMMAND --help shows every option):
  train       train a VAE; each run writes to a fresh runs/<time>-<dataset>/ (runs/latest points
              at the newest): checkpoint, history.csv and figures
              main options: --dataset NAME --data-dir DIR --epochs N --z-dim Z --hidden 400,200
              --likelihood {{{','.join(LIKELIHOOD_CHOICES)}}} --lr LR --seed S --out DIR
              --resume --force --threads N|auto --no-progress
  evaluate    negative ELBO (and with --iw-k K the importance-sampled log-likelihood) of a
              checkpoint: numpyvae evaluate runs/latest/checkpoint.npz [--iw-k 5000]
  gradcheck   central-difference check of every gradient of a small float64 model
  assignment  instructors: 'assignment make DIR' writes student stubs, 'assignment grade FILE'
              grades them by gradient checks

data sets (--dataset):
{sets}
"""


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    """Return the ``argparse`` parser of the ``numpyvae`` command (subcommands train,
    gradcheck, evaluate, assignment); with ``preset`` the train options default to that
    preset's values."""
    p = _Parser(prog=PROG, description="A variational autoencoder in NumPy with hand-written gradients.",
                epilog=_overview(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"numpyvae {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = TRAIN_DEFAULTS
    t = sub.add_parser("train", help="train a VAE and write checkpoint, history and figures",
                       description="Train a VAE; writes checkpoint.npz (+ .json), history.csv/.json and PNG figures "
                                   "to a fresh directory runs/<time>-<dataset>/ (runs/latest points at the newest) "
                                   "or to --out.")
    t.add_argument("--dataset", help=f"data set name (default: {d['dataset']}, shipped with the package): "
                                     + ", ".join(DATASETS))
    t.add_argument("--data-dir", help="directory with real data sets (default: $NUMPYVAE_DATA)")
    t.add_argument("--z-dim", type=_positive_int, help=f"latent dimension (default {d['z_dim']})")
    t.add_argument("--hidden", type=_hidden,
                   help="hidden layer sizes, e.g. '400' or '200,200'; '' for none (default 400)")
    t.add_argument("--activation", choices=ACTIVATION_CHOICES, help=f"hidden activation (default {d['activation']})")
    t.add_argument("--likelihood", choices=LIKELIHOOD_CHOICES,
                   help="decoder likelihood (default: bernoulli for images, gaussian for 2-D toy data)")
    t.add_argument("--c", type=_positive_float, help="variance of the fixed-variance Gaussian decoder (default 1)")
    t.add_argument("--k", type=_positive_int, help="Monte Carlo samples per example (default 1)")
    t.add_argument("--kl", choices=("closed", "mc"), help="closed-form or Monte Carlo KL (default closed)")
    t.add_argument("--beta", type=_nonneg_float, help="weight of the KL term (default 1)")
    t.add_argument("--warmup-epochs", type=_nonneg_float, help="linear KL warm-up length in epochs (default 0: none)")
    t.add_argument("--epochs", type=_positive_int, help=f"epochs in total (default {DEFAULT_EPOCHS})")
    t.add_argument("--batch-size", type=_positive_int, help=f"minibatch size (default {d['batch_size']})")
    t.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, help="optimizer (default adam)")
    t.add_argument("--lr", type=_positive_float, help="learning rate (default 1e-3; may change on --resume)")
    t.add_argument("--seed", type=_nonneg_int, help="seed of the data split, the model and the trainer (default 0)")
    t.add_argument("--dtype", choices=("float32", "float64"), help="floating-point type of the model (default float32)")
    t.add_argument("--out", help="output directory (default: a fresh runs/<time>-<dataset>/; with --resume: "
                                 "runs/latest)")
    t.add_argument("--force", action="store_true", help="replace the run already in --out")
    t.add_argument("--binarize", choices=("auto", "dynamic", "fixed", "none"),
                   help="binarisation of grey-level images (default auto: dynamic for the Bernoulli likelihood)")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal); the per-epoch "
                        "lines stay")
    t.add_argument("--max-train", type=_positive_int, help="use only the first N training examples")
    t.add_argument("--time-limit", type=_positive_float, default=None, metavar="MINUTES",
                   help="stop at the end of the first epoch that finishes after MINUTES of training (the run "
                        "keeps its checkpoint, figures and, with --preset, the paper's evaluation; continue "
                        "with --resume)")
    t.add_argument("--threads", type=_threads,
                   help="threads: a number, or auto (default): 1 when the other cores are busy, else the idle "
                        "physical cores up to 4; an OPENBLAS_NUM_THREADS/OMP_NUM_THREADS setting wins. With N > 1 "
                        "each minibatch is split in N parts trained at once, each on a one-thread BLAS")
    _add_family_flags(t)
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out (default runs/latest) up to --epochs in total; model, data and "
                        "training options come from the checkpoint (only --epochs, --lr, --threads may change)")
    _preset_hook_parser(t, preset)

    g = sub.add_parser("gradcheck", help="finite-difference check of every gradient of a small model",
                       description="Build a small float64 VAE (12-8-3 by default), fix eps, and compare the analytic "
                                   "gradient of the loss with central differences for every parameter.")
    g.add_argument("--likelihood", choices=LIKELIHOOD_CHOICES + ("all",), default="all",
                   help="decoder likelihood to check (default all three, one after the other)")
    g.add_argument("--activation", choices=ACTIVATION_CHOICES, default="tanh", help="hidden activation (default tanh)")
    g.add_argument("--x-dim", type=_positive_int, default=12, help="data dimension D (default 12)")
    g.add_argument("--hidden", type=_hidden, default=(8,), help="hidden layer sizes, e.g. '8' or '8,6' (default 8)")
    g.add_argument("--z-dim", type=_positive_int, default=3, help="latent dimension (default 3)")
    g.add_argument("--batch-size", type=_positive_int, default=5, help="examples in the checked batch (default 5)")
    g.add_argument("--k", type=_positive_int, default=2,
                   help="Monte Carlo samples per example, eps held fixed (default 2)")
    g.add_argument("--kl", choices=("closed", "mc"), default="closed",
                   help="closed-form or Monte Carlo KL (default closed)")
    g.add_argument("--beta", type=_nonneg_float, default=1.0, help="weight of the KL term (default 1)")
    g.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the weights, data and eps (default 0)")

    e = sub.add_parser("evaluate",
                       help="negative ELBO (and optionally importance-sampled log-likelihood) of a checkpoint",
                       description="Evaluate a checkpoint on the test split (the validation split when the data set "
                                   "has no test split).")
    e.add_argument("checkpoint",
                   help="path of a checkpoint.npz written by 'numpyvae train' (e.g. runs/latest/checkpoint.npz)")
    e.add_argument("--dataset", default=None, help="override the data set recorded in the checkpoint")
    e.add_argument("--data-dir", default=None, help="directory with real data sets (default: $NUMPYVAE_DATA)")
    e.add_argument("--split", choices=("auto", "test", "val"), default="auto",
                   help="default auto: test if present, else val")
    e.add_argument("--k", type=_positive_int, default=1, help="Monte Carlo samples for the ELBO (default 1)")
    e.add_argument("--iw-k", type=_positive_int, default=None,
                   help="also estimate log p(x) by importance sampling with K samples")
    e.add_argument("--batch-size", type=_positive_int, default=500, help="examples per batch (default 500)")
    e.add_argument("--seed", type=_nonneg_int, default=None,
                   help="seed of the evaluation noise (default: the run's seed, so K = 1 on the validation split "
                        "reproduces the last validation number of the history)")
    e.add_argument("--max-examples", type=_positive_int, default=None, help="evaluate only the first N examples")
    e.add_argument("--threads", type=_threads, default="auto",
                   help="BLAS threads: a number or auto (default; see train)")

    sub.add_parser("assignment", add_help=False,
                   help="instructors: 'assignment make DIR' writes student stubs, "
                        "'assignment grade FILE' grades them by gradient checks")
    return p


# ----------------------------------------------------------------------------------------------
# --preset (training/presets.py): three hooks, kept apart from the rest of the CLI
# ----------------------------------------------------------------------------------------------
def _preset_hook_parser(t: argparse.ArgumentParser, preset: str | None) -> None:
    add_preset_arguments(t)
    if preset:
        t.set_defaults(**cli_defaults(preset))   # the preset's values; flags given still win


def _preset_hook_reparse(a: argparse.Namespace, argv: list[str]) -> argparse.Namespace:
    if getattr(a, "preset", None):
        return build_parser(a.preset).parse_args(argv)
    return a


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _data_dir(arg: str | None) -> str | None:
    d = arg if arg is not None else os.environ.get("NUMPYVAE_DATA") or None
    if d is not None and not os.path.isdir(os.path.expanduser(d)):
        src = "--data-dir" if arg is not None else "$NUMPYVAE_DATA"
        raise CLIError(f"data directory not found: {d} (from {src})")
    return d


def _load_data(name: str, data_dir: str | None, seed: int, binarize: str | None, *, test: bool,
               who: str = "") -> Any:
    """The data set ``name``; ``who`` names where the name came from in the error for a missing
    data directory (default ``--dataset NAME``)."""
    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r} (choose from: {', '.join(DATASETS)})")
    if data_dir is None and name != "mnist-embedded" and name not in TOY_SETS:
        raise CLIError(f"{who or '--dataset ' + name} is read from a data directory: pass --data-dir DIR or set "
                       "NUMPYVAE_DATA (the default data set mnist-embedded ships with the package and needs none)")
    return load_dataset(name, data_dir=data_dir, seed=seed, binarize=binarize, test=test)


def _write_history_json(history: dict[str, list[float]], out: str) -> str:
    """history.json, the history's columns in one JSON document, written once as the run ends
    (the trainer appends history.csv epoch by epoch)."""
    # strict JSON: a missing value (e.g. no validation set) is null, not NaN
    clean = {c: [v if isinstance(v, int) or np.isfinite(v) else None for v in col] for c, col in history.items()}
    js = json.dumps(clean, indent=1)
    return ck.atomic_write(os.path.join(out, "history.json"), lambda fh: fh.write((js + "\n").encode("utf-8")))


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _threads_choice(request: str | int, split: bool = False) -> tuple[int, str, dict[str, Any]]:
    """Apply nothing; return (threads, the line to print, the record for the run's config).
    ``split``: training, where n > 1 threads split each minibatch (speed/split.py)."""
    n, reason = threads.choose_threads(request, split=split)
    name = threads.blas_name()
    adapt = bool(split and n > 1 and request == "auto")    # an explicit count is kept as given
    if split and n > 1:
        where = ("the second in a child process" if uses_processes(n) else
                 "each on its own thread" if fork_available() else
                 "each on its own thread in one process (no fork on this system, so no child process)")
        line = f"threads: {n}, each minibatch split in {n} parts, {where}, on a one-thread {name} ({reason})"
        if adapt:
            line += ("; whole steps instead while they measure faster (another process busy), "
                     "so reruns agree to rounding, not bit for bit: give --threads to fix it")
    else:
        line = f"BLAS: {name}, {n} thread{'s' if n != 1 else ''} ({reason})"
    return n, line, {"library": name, "threads": n, "choice": reason, "request": request,
                     "split": bool(split and n > 1), "adapt": adapt}


def _check_memory(what: dict[str, Any], need: Callable[..., int], defaults: dict[str, Any]) -> None:
    """Refuse, in one line, a model that cannot fit in this machine's available memory.

    ``what`` maps option names (``--z-dim``, ...) to their values; ``need(**values)`` gives the
    bytes; ``defaults`` the values to try when looking for the option to blame.
    """
    avail = memory.available_bytes()
    if avail is None:
        return
    budget = int(MEMORY_SHARE * avail)
    total = need(**what)
    if total <= budget:
        return
    # blame the option whose default value saves the most, then find its largest value that fits
    culprit = min(defaults, key=lambda opt: need(**{**what, opt: defaults[opt]}))
    cur = what[culprit]
    if culprit == "--hidden":
        hi = max(cur) if cur else 1
        best = memory.largest_fitting(lambda v: need(**{**what, "--hidden": tuple(min(h, v) for h in cur)}), budget, hi)
        fits = f"hidden layers of up to {best} units" if best else "no hidden layer size"
        shown = ",".join(str(h) for h in cur)
    else:
        best = memory.largest_fitting(lambda v: need(**{**what, culprit: v}), budget, int(cur))
        fits = f"{culprit} up to {best}" if best else f"no value of {culprit}"
        shown = str(cur)
    raise CLIError(f"{culprit} {shown} needs about {memory.fmt_bytes(total)} of memory (parameters, optimizer state "
                   f"and one batch of activations) but this machine has {memory.fmt_bytes(avail)} available; with "
                   f"the other options as given, {fits} {'fit' if culprit == '--hidden' and best else 'fits'}")


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


def _resume_command(out: str, data_dir: str | None, **more: Any) -> str:
    """The command that continues the run in ``out``. A run that read its data through
    ``--data-dir`` names it again: the checkpoint records the data set, not where its files are."""
    more = {"data_dir": data_dir, **more}
    tail = "".join(f" --{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in more.items() if v is not None)
    return f"numpyvae train --resume --out {shlex.quote(out)}{tail}"


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
def build_model(a: argparse.Namespace, x_dim: int, likelihood: str, n_classes: int | None = None) -> Any:
    """The model a fresh ``numpyvae train`` run trains, from its options: a config whose
    ``"model"`` kind ``numpyvae._registry`` builds (a new model registers its kind there and
    meets the trainer's model contract, ``numpyvae/training/trainer.py``)."""
    cfg: dict[str, Any] = {"x_dim": x_dim, "hidden": list(a.hidden), "likelihood": likelihood,
                           "activation": a.activation, "c": a.c, "seed": a.seed, "dtype": np.dtype(a.dtype).name}
    if a.model == "vqvae":
        cfg.update(model="vqvae", n_codes=a.n_codes, code_dim=a.code_dim, codebook_size=a.codebook_size,
                   beta=a.commitment)
    elif a.conditional or a.posterior != "diag" or a.objective != "elbo":
        cfg.update(model="family", z_dim=a.z_dim, posterior=a.posterior, objective=a.objective,
                   n_classes=n_classes if a.conditional else None)
    else:
        cfg.update(model="vae", z_dim=a.z_dim)
    return _registry.from_config(cfg)


def _parse_train(a: argparse.Namespace) -> set[str]:
    """Fill in the train defaults; return the names of the options given on the command line."""
    given = {k for k in TRAIN_DEFAULTS if getattr(a, k, None) is not None}
    for k, v in TRAIN_DEFAULTS.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    return given


def _train_mode(a: argparse.Namespace) -> tuple[str, str | None]:
    """(likelihood, binarisation mode) of a fresh run, or CLIError."""
    if a.dataset not in DATASETS:
        raise CLIError(f"unknown dataset {a.dataset!r} (choose from: {', '.join(DATASETS)})")
    toy = a.dataset in TOY_SETS
    likelihood = a.likelihood or ("gaussian" if toy else "bernoulli")
    if toy and likelihood == "bernoulli":
        raise CLIError(f"--likelihood bernoulli needs data in [0, 1]; {a.dataset} is 2-D real-valued data "
                       "(use gaussian)")
    if toy and a.binarize in ("dynamic", "fixed"):
        raise CLIError(f"--binarize {a.binarize} applies to grey-level images, not to the 2-D set {a.dataset}")
    already_binary = a.dataset == "binarized-mnist"
    if a.binarize == "auto":
        mode = "dynamic" if (likelihood == "bernoulli" and not toy and not already_binary) else None
    else:
        mode = None if a.binarize == "none" else a.binarize
    if already_binary and mode is not None:
        raise CLIError("--binarize: binarized-mnist is already binary (use --binarize none or auto)")
    return likelihood, mode


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
        "model": "vqvae" if m.get("model") == "vqvae" else "vae", "conditional": bool(m.get("n_classes")),
        "n_codes": m.get("n_codes"), "code_dim": m.get("code_dim"), "codebook_size": m.get("codebook_size"),
        "commitment": m.get("beta") if m.get("model") == "vqvae" else None,
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


def _cmd_train(a: argparse.Namespace) -> int:
    held: list[rundir.RunLock] = []  # the lock of the run directory, once taken
    try:
        return _train(a, held)
    finally:
        for lock in held:
            lock.release()


def _open_run_to_resume(a: argparse.Namespace, given: set[str],
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
    held.append(rundir.RunLock(out, say=_say).acquire())  # before reading: no one else is writing it
    saved = ck.load(ckpt_path)  # validated: finite, dtypes and shapes as recorded
    conflicts = _resume_conflicts(a, given, saved)
    if conflicts:
        raise CLIError(f"--resume: {len(conflicts)} option(s) contradict the checkpoint {ckpt_path}: "
                       + "; ".join(conflicts) + ". Drop them to continue the run (only --epochs, --lr and "
                       "--threads may change), or start a new run without --resume")
    total = a.epochs if "epochs" in given else int(saved.train_config.get("epochs", saved.epoch))
    if saved.epoch >= total:
        further = _resume_command(out, a.data_dir, epochs=saved.epoch + 10)
        if saved.epoch > total:
            raise CLIError(f"--resume: --epochs {total} is fewer than the {saved.epoch} epochs the run in {out} "
                           f"has already finished; to train further: {further}")
        print(f"nothing to do: the run in {out} has finished its {saved.epoch} epochs; to train further: {further}")
        return None
    return out, saved, total


def _check_out_is_free(out: str, force: bool, held: list[rundir.RunLock]) -> None:
    """Refuse an ``--out`` that is a file, is in use, or holds a run (unless ``--force``)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out {out} is an existing file, not a directory; choose another --out")
    if os.path.isdir(out):  # a training in progress there is the first thing to report
        held.append(rundir.RunLock(out, say=_say).acquire())
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


def _check_train_memory(a: argparse.Namespace, x_dim: int, likelihood: str) -> None:
    """Refuse a model whose training would not fit in this machine's memory."""
    itemsize = np.dtype(a.dtype).itemsize

    def need(**v: Any) -> int:
        return memory.run_bytes(x_dim, v["--z-dim"], v["--hidden"], likelihood, batch_size=v["--batch-size"],
                                k=v["--k"], itemsize=itemsize)

    d = TRAIN_DEFAULTS
    _check_memory({"--z-dim": a.z_dim, "--hidden": tuple(a.hidden), "--k": a.k, "--batch-size": a.batch_size},
                  need,
                  {"--z-dim": d["z_dim"], "--hidden": d["hidden"], "--k": d["k"], "--batch-size": d["batch_size"]})


def _resumed_trainer(a: argparse.Namespace, given: set[str], saved: ck.Checkpoint, total: int,
                     x_train: np.ndarray, x_val: np.ndarray | None, progress: bool,
                     blas_record: dict[str, Any], labels: dict[str, np.ndarray]) -> Trainer:
    """The trainer continuing ``saved`` up to ``total`` epochs, with --lr applied and every
    change recorded in the checkpoint (``extra["resumes"]``)."""
    ckpt_path = saved.path
    extra = dict(saved.extra)
    changed = {}
    if "lr" in given and not np.isclose(a.lr, float(saved.train_config.get("lr", a.lr)), rtol=1e-12, atol=0):
        changed["lr"] = [saved.train_config.get("lr"), a.lr]
    if total != int(saved.train_config.get("epochs", saved.epoch)):
        changed["epochs"] = [saved.train_config.get("epochs"), total]
    extra["blas"] = blas_record
    extra["resumes"] = list(extra.get("resumes") or []) + [
        {"at_epoch": saved.epoch, "changed": changed, "blas": blas_record,
         "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}]
    trainer = Trainer.resume(saved, x_train, x_val, epochs=total, progress=progress,
                             history_path=os.path.join(os.path.dirname(ckpt_path), "history.csv"),
                             speed=Speed(int(blas_record["threads"]), adapt=blas_record["adapt"]),
                             lr=a.lr if "lr" in changed else None, extra=extra, **labels)
    for k, (old, new) in changed.items():
        _say(f"--resume: {k} {old} -> {new} (recorded in {sidecar(ckpt_path)})")
    return trainer


def _train(a: argparse.Namespace, held: list[rundir.RunLock]) -> int:
    t_start = time.perf_counter()
    given = _parse_train(a)
    _check_family_flags(a)
    found = None
    if a.resume:
        found = _open_run_to_resume(a, given, held)
        if found is None:
            return 0  # the run has finished its epochs: nothing to do, and it said so
    progress = not a.no_progress and sys.stderr.isatty()
    n_threads, blas_line, blas_record = _threads_choice(a.threads, split=True)
    data_dir = _data_dir(a.data_dir)

    if a.resume:
        assert found is not None
        out, saved, total = found
        ckpt_path = os.path.join(out, "checkpoint.npz")
        if "dataset" not in saved.extra:
            raise CLIError(f"--resume: {ckpt_path} does not record its data set")
        name, mode = saved.extra["dataset"], saved.extra.get("binarize")
        data_seed, max_train = int(saved.extra.get("data_seed", 0)), saved.extra.get("max_train")
        likelihood = str(saved.model_config.get("likelihood"))
        conditional = bool(saved.model_config.get("n_classes"))
    else:
        likelihood, mode = _train_mode(a)
        conditional = a.conditional
        name, data_seed, max_train = a.dataset, a.seed, a.max_train
        out = a.out
        if out == "":
            raise CLIError("--out: expected a directory name, got ''")
        if out is not None:
            _check_out_is_free(out, a.force, held)

    # training never reads a test split: the test files need not exist
    ds = _load_data(name, data_dir, data_seed, mode, test=False,
                    who=f"the run's data set {name}" if a.resume else "")
    x_train = ds.x_train if max_train is None else ds.x_train[: max_train]
    x_val, y_val = ds.x_val, ds.y_val
    # a conditional model's labels travel with the rows through the trainer
    labels = {}
    if conditional:
        if ds.y_train is None or y_val is None:
            raise CLIError(f"--conditional needs labels; data set {name} has none")
        labels = {"y_train": ds.y_train[: x_train.shape[0]].astype(np.int64), "y_val": y_val.astype(np.int64)}
    if not a.resume:
        _check_train_memory(a, ds.x_dim, likelihood)
        fresh_default = out is None
        try:
            if out is None:
                out = rundir.new_run_dir(RUNS_ROOT, name)
            else:
                os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"--out {out or RUNS_ROOT}: cannot create the run directory "
                           f"({exc.strerror or exc})") from None

    if not held:
        held.append(rundir.RunLock(out, say=_say).acquire())
    rundir.remove_stale_tmp(out)
    if a.resume:
        trainer = _resumed_trainer(a, given, saved, total, x_train, x_val, progress, blas_record, labels)
        if saved.extra.get("preset") and not getattr(a, "preset", None):
            a.preset = saved.extra["preset"]
    else:
        if a.force:
            removed = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
            for f in removed:
                os.unlink(os.path.join(out, f))
            if removed:
                _say(f"--force: removed the previous run's files from {out} ({', '.join(removed)})")
        if fresh_default:
            note = rundir.point_latest(RUNS_ROOT, out)
            if note:
                _say(note)
        ckpt_path = os.path.join(out, "checkpoint.npz")
        n_classes = int(max(labels["y_train"].max(), labels["y_val"].max())) + 1 if labels else None
        vae = build_model(a, ds.x_dim, likelihood, n_classes)
        cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr, beta=a.beta,
                          warmup_epochs=a.warmup_epochs, k=a.k, kl=a.kl, binarize=(mode == "dynamic"),
                          seed=a.seed, progress=progress)
        extra = {"dataset": name, "binarize": mode, "data_seed": a.seed, "max_train": a.max_train,
                 "n_train": int(x_train.shape[0]), "blas": blas_record}
        if getattr(a, "preset", None):
            extra["preset"] = a.preset      # --resume runs the preset's evaluation again
        cfg = apply_preset_config(getattr(a, "preset", None), cfg)    # --preset: optimizer kwargs, lr schedule
        trainer = Trainer(vae, x_train, x_val, cfg, checkpoint_path=ckpt_path, extra=extra,
                          speed=Speed(n_threads, adapt=blas_record["adapt"]),
                          history_path=os.path.join(out, "history.csv"), **labels)
    _say(f"run directory: {out}")
    _say(blas_line)
    parts = len(split_sizes(trainer.config.batch_size, trainer.config.k, n_threads))
    if n_threads > 1 and parts < n_threads:
        _say(f"threads: a minibatch of {trainer.config.batch_size} x {trainer.config.k} sample(s) splits into "
             f"{parts} part{'s' if parts != 1 else ''} of at least {MIN_ROWS} decoder rows: "
             f"{parts} thread{'s' if parts != 1 else ''} will work")
    heap_line = heap.keep_freed_heap()
    if heap_line:
        _say(heap_line)

    def report(tr: Trainer, row: dict[str, float]) -> None:
        print(f"epoch {row['epoch']:>3}/{tr.config.epochs}  train -ELBO {row['train_neg_elbo']:8.2f}  "
              f"val -ELBO {row['val_neg_elbo']:8.2f} (recon {row['val_recon']:7.2f} + KL {row['val_kl']:6.2f})  "
              f"beta {row['beta']:.3g}  {tr.epoch_times[-1]:.1f}s{_extras(row)}", file=sys.stderr, flush=True)

    stopped: BaseException | None = None
    with threads.blas_threads(n_threads):
        try:
            history = trainer.fit(callbacks=[report], stop_after=_seconds(a.time_limit))
        except (TrainingDiverged, KeyboardInterrupt, TrainingStopped) as exc:
            stopped, history = exc, trainer.history  # the trainer is back at its last good state
        t_train = time.perf_counter() - t_start
        gov = trainer.speed.governor
        if gov is not None and gov.counts[False]:
            _say(f"threads: {gov.counts[False]} of {gov.steps} steps ran whole, not split "
                 f"({'whole steps measured faster at the end' if not gov.best else 'probes, or a busy spell'})")
        _write_history_json(history, out)
        figs: dict[str, str] = {}
        if trainer.epoch > 0:
            fig_x = trainer.val_data if trainer.val_data is not None else x_train
            fig_y = y_val if trainer.val_data is not None else ds.y_train
            if conditional:
                fig_y = trainer.y_val if trainer.val_data is not None else trainer.y_train
            figs = plots.make_figures(trainer.vae, fig_x, out, history=history, y_val=fig_y,
                                      image_shape=ds.image_shape, seed=data_seed)
    if stopped is not None:
        return _report_stop(stopped, trainer, out, a.data_dir)
    t_total = time.perf_counter() - t_start
    if trainer.epoch < trainer.config.epochs:
        _say(f"--time-limit {a.time_limit:g}: stopped after epoch {trainer.epoch} of {trainer.config.epochs}; "
             f"to continue: {_resume_command(out, a.data_dir)}")
    if preset_epilogue(a, trainer, ds) is not None:    # --preset: the paper's evaluation, projected time
        figs.update(preset_json=os.path.join(out, "preset.json"), preset=os.path.join(out, "preset_curve.png"))

    last = {c: history[c][-1] for c in history}
    print(f"finished {trainer.epoch} epochs ({trainer.step} steps) on {name} "
          f"[{trainer.x_train.shape[0]} train / {0 if x_val is None else x_val.shape[0]} val] "
          f"in {t_train:.1f}s (with figures {t_total:.1f}s)")
    print(f"validation negative ELBO: {_fmt(last['val_neg_elbo'])} nats "
          f"= reconstruction {_fmt(last['val_recon'])} + KL {_fmt(last['val_kl'])}{_extras(last)}")
    print(f"train negative ELBO (epoch average): {_fmt(last['train_neg_elbo'])} nats"
          + (f"; training objective (beta={last['beta']:.3g}): {_fmt(last['train_loss'])}"
             if last['beta'] != 1.0 else ""))
    print(f"files in {os.path.abspath(out)}: checkpoint.npz, checkpoint.json, history.csv, history.json, "
          + ", ".join(os.path.basename(p) for p in figs.values()))
    return 0


def _extras(row: dict[str, Any]) -> str:
    """A VQ-VAE's codebook numbers of a history row, or ''."""
    if "val_perplexity" not in row:
        return ""
    return (f"  codebook {row['val_codebook']:.3f}  perplexity {row['val_perplexity']:.1f}"
            f"  codes used {row['val_codes_used']}")


def _seconds(minutes: float | None) -> float | None:
    return None if minutes is None else 60.0 * minutes


def sidecar(path: str) -> str:
    """The checkpoint's human-readable JSON twin (``checkpoint.json``)."""
    return ck.sidecar_path(path)


def _report_stop(exc: BaseException, trainer: Trainer, out: str, data_dir: str | None) -> int:
    """After a divergence or Ctrl-C: say what is kept and how to continue; return the exit code."""
    ckpt_path = os.path.join(out, "checkpoint.npz")
    good = "the untrained model" if trainer.epoch == 0 else f"epoch {trainer.epoch} of {trainer.config.epochs}"
    if isinstance(exc, TrainingDiverged):
        _say(f"{PROG}: error: {exc}")
        smaller = min(trainer.config.lr / 10, TRAIN_DEFAULTS["lr"])  # a tenth, or the default if that is less
        _say(f"saved: checkpoint {ckpt_path} ({good}), history.csv"
             + (" and the figures so far" if trainer.epoch else ""))
        _say(f"to continue with a smaller learning rate: {_resume_command(out, data_dir, lr=f'{smaller:g}')}")
        return 1
    if isinstance(exc, TrainingStopped):
        _say(f"{PROG}: error: {exc}; the last finished epoch is kept")
        _say(f"saved: checkpoint {ckpt_path} ({good}), history.csv"
             + (" and the figures so far" if trainer.epoch else ""))
        _say(f"to continue on one thread: {_resume_command(out, data_dir, threads=1)}")
        return 1
    _say(f"{PROG}: interrupted during epoch {trainer.epoch + 1}; the last finished epoch is kept")
    _say(f"saved: checkpoint {ckpt_path} ({good}), history.csv" + (" and the figures so far" if trainer.epoch else ""))
    _say(f"to continue: {_resume_command(out, data_dir)}")
    return 130


# ----------------------------------------------------------------------------------------------
# gradcheck
# ----------------------------------------------------------------------------------------------
def _cmd_gradcheck(a: argparse.Namespace) -> int:
    names = LIKELIHOOD_CHOICES if a.likelihood == "all" else (a.likelihood,)
    ok_all = True
    for lik in names:
        vae = VAE(x_dim=a.x_dim, z_dim=a.z_dim, hidden=a.hidden, likelihood=lik, activation=a.activation,
                  c=0.5, seed=a.seed, dtype=np.float64)
        rng = np.random.default_rng(a.seed + 1)
        if lik == "bernoulli":
            x = (rng.random((a.batch_size, a.x_dim)) < 0.5).astype(np.float64)
        else:
            x = rng.random((a.batch_size, a.x_dim))
        eps = rng.standard_normal((a.k, a.batch_size, a.z_dim))
        report = check_model(vae, x, eps=eps, beta=a.beta, kl=a.kl, seed=a.seed)
        hidden = "-".join(str(h) for h in a.hidden)
        arch = f"{a.x_dim}-{hidden + '-' if hidden else ''}{a.z_dim}"
        print(f"== likelihood {lik}, model {arch}, activation {a.activation}, B={a.batch_size}, K={a.k}, "
              f"kl={a.kl}, beta={a.beta:g}, float64, eps fixed")
        print(report)
        print()
        ok_all = ok_all and bool(report.passed)
    print("gradient check: " + ("all passed" if ok_all else "FAILED"))
    return 0 if ok_all else 1


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------
def _cmd_evaluate(a: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    path = rundir.resolve(a.checkpoint)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "checkpoint.npz")):
        path = os.path.join(path, "checkpoint.npz")  # a run directory stands for its checkpoint
    c = ck.load(path)  # CheckpointError -> one line, exit 2 (also for NaN or mistyped parameters)
    name = a.dataset or c.extra.get("dataset")
    if not name:
        raise CLIError(f"{a.checkpoint}: the checkpoint does not record its data set; pass --dataset")
    mode = c.extra.get("binarize")
    if a.dataset and a.dataset != c.extra.get("dataset"):
        mode = None if a.dataset in TOY_SETS or a.dataset == "binarized-mnist" else mode
    m = c.model_config
    _check_memory({"--k": a.k, "--batch-size": a.batch_size},
                  lambda **v: memory.run_bytes(int(m.get("x_dim", 1)), int(m.get("z_dim", 1)),
                                               list(m.get("hidden", ())), str(m.get("likelihood")),
                                               batch_size=v["--batch-size"], k=v["--k"],
                                               itemsize=np.dtype(m.get("dtype", "float32")).itemsize, eval_batch=0),
                  {"--k": 1, "--batch-size": 500})
    vae = c.build_model()
    data_seed = int(c.extra.get("data_seed", 0))
    ds = _load_data(name, _data_dir(a.data_dir), data_seed, mode, test=a.split in ("auto", "test"),
                    who="" if a.dataset else f"the checkpoint's data set {name}")
    if ds.x_dim != int(vae.config["x_dim"]):
        raise CLIError(f"data set {name} has D = {ds.x_dim} but the model expects x_dim = {vae.config['x_dim']}")
    split = a.split
    if split == "auto":
        split = "test" if ds.x_test is not None else "val"
    if split == "test":
        if ds.x_test is None:
            raise CLIError(f"data set {name} has no test split (use --split val)")
        x, y = ds.x_test, ds.y_test
    else:
        x, y = ds.x_val, ds.y_val
    if a.max_examples is not None:
        x, y = x[: a.max_examples], (None if y is None else y[: a.max_examples])
    x = np.asarray(x, dtype=vae.dtype)
    if not getattr(vae, "needs_labels", False):
        y = None
    elif y is None:
        raise CLIError(f"the conditional model needs labels; data set {name} has none")
    else:
        y = np.asarray(y, dtype=np.int64)
    if a.iw_k is not None and not getattr(vae, "stochastic", True):
        raise CLIError("evaluate --iw-k: a VQ-VAE's posterior is one code per position (no sampling): its "
                       "importance-sampled log p(x) is its ELBO, printed without --iw-k")
    if not getattr(vae, "stochastic", True) and a.k != 1:
        raise CLIError("evaluate --k: a VQ-VAE draws no samples; leave --k 1")
    dynamic = mode == "dynamic"
    seed = a.seed if a.seed is not None else int(c.train_config.get("seed", 0))
    kl = c.train_config.get("kl", "closed")
    n_threads, blas_line, _ = _threads_choice(a.threads)
    _say(blas_line)
    with threads.blas_threads(n_threads):
        res = evaluate(vae, x, seed=seed, batch_size=a.batch_size, k=a.k, kl=kl, binarize=dynamic, y=y)
        note = " (binarised once with a fixed seed)" if dynamic else ""
        print(f"checkpoint {a.checkpoint}: epoch {c.epoch}, step {c.step}")
        print(f"{name} {split} split, {res['n']} examples{note}, K = {a.k}:")
        print(f"negative ELBO: {_fmt(res['neg_elbo'])} nats = reconstruction {_fmt(res['recon'])} "
              f"+ KL {_fmt(res['kl'])}" + _extras({f"val_{k}": v for k, v in res.items()}))
        if a.iw_k is not None:
            xi = x
            if dynamic:
                xi = binarize_batch(x, np.random.default_rng(_seed_streams(seed)["val_binarize"]))
            ll = np.asarray(log_likelihood(vae, xi, k=a.iw_k, rng=_rng.generator(seed, "iw_eps"), y=y))
            given = " | y" if y is not None else ""
            print(f"importance-sampled log p(x{given}), K = {a.iw_k}: {_fmt(float(ll.mean()))} nats "
                  f"(negative: {_fmt(-float(ll.mean()))})")
    print(f"time: {time.perf_counter() - t0:.1f}s")
    return 0


# ----------------------------------------------------------------------------------------------
# the model family (note 10): its flags
# ----------------------------------------------------------------------------------------------
def _add_family_flags(t: argparse.ArgumentParser) -> None:
    f = t.add_argument_group("model family (derivations/10_model_family.md)")
    f.add_argument("--model", choices=("vae", "vqvae"), help="the VAE (default) or a VQ-VAE")
    f.add_argument("--objective", choices=("elbo", "iwae"),
                   help="training objective: the ELBO (default) or the importance-weighted bound with --k samples")
    f.add_argument("--posterior", choices=("diag", "full"),
                   help="encoder covariance: diagonal (default) or full (Cholesky factor)")
    f.add_argument("--conditional", action="store_true", default=None,
                   help="conditional VAE: the one-hot label joins the encoder input and z (labelled data sets)")
    f.add_argument("--n-codes", type=_positive_int, help="VQ-VAE: code vectors per image (default 8)")
    f.add_argument("--code-dim", type=_positive_int, help="VQ-VAE: dimension of each code vector (default 4)")
    f.add_argument("--codebook-size", type=_positive_int, help="VQ-VAE: codebook entries K (default 32)")
    f.add_argument("--commitment", type=_nonneg_float, help="VQ-VAE: commitment weight (default 0.25)")


def _check_family_flags(a: argparse.Namespace) -> None:
    """Reject family flags that would otherwise be ignored or contradict each other."""
    vq = a.model == "vqvae"
    if a.objective == "iwae" and (a.beta != 1.0 or a.warmup_epochs > 0):
        raise CLIError("--objective iwae: the bound has no KL weight; leave --beta 1 and --warmup-epochs 0")
    if a.objective == "iwae" and a.kl != "closed":
        raise CLIError("--objective iwae: --kl does not apply (the bound uses log q - log p at each sample)")
    if vq and (a.objective != "elbo" or a.posterior != "diag" or a.conditional):
        raise CLIError("--model vqvae takes none of --objective, --posterior, --conditional")
    if vq and (a.beta != 1.0 or a.k != 1 or a.kl != "closed" or a.warmup_epochs > 0):
        raise CLIError("--model vqvae has no KL term or samples: use --commitment, not --beta/--k/--kl/--warmup-epochs")
    if not vq and (a.n_codes, a.code_dim, a.codebook_size, a.commitment) != (8, 4, 32, 0.25):
        raise CLIError("--n-codes, --code-dim, --codebook-size and --commitment need --model vqvae")
    if (vq or a.conditional) and not a.resume and a.dataset in TOY_SETS:
        raise CLIError(f"--conditional / --model vqvae train on image data sets, got {a.dataset!r}")


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------
def _one_line(msg: object) -> str:
    return " ".join(str(msg).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``numpyvae`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    0 success; 1 training diverged or a gradient check failed; 2 bad arguments or inputs (one
    line ``numpyvae: error: ...`` on stderr, no traceback unless ``NUMPYVAE_DEBUG`` is set);
    130 interrupted (Ctrl-C).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("NUMPYVAE_DEBUG"))
    if argv[:1] == ["assignment"]:
        return assignment_main(argv[1:])
    parser = build_parser()
    try:
        try:
            a = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0) if not isinstance(exc.code, str) else 2
        a = _preset_hook_reparse(a, argv)
        if a.command is None:
            raise CLIError("a command is required: train, gradcheck, evaluate or assignment (see numpyvae --help)")
        if a.command == "train":
            return _cmd_train(a)
        if a.command == "gradcheck":
            return _cmd_gradcheck(a)
        return _cmd_evaluate(a)
    except (CLIError, ck.CheckpointError, rundir.RunLocked, OSError, ValueError, TypeError, MemoryError) as exc:
        if debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
