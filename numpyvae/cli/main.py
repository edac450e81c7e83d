"""Command line interface: ``numpyvae train | gradcheck | evaluate``.

``main(argv)`` is the console-script entry point (and ``python -m numpyvae``); it returns the
exit code instead of calling ``sys.exit``. Bad arguments or inputs (unknown data set,
non-positive sizes, missing data directory, unreadable checkpoint, ...) end with a single line
``numpyvae: error: ...`` on stderr and exit code 2; a diverged training run exits with 1, as
does a failed gradient check. Set ``NUMPYVAE_DEBUG=1`` to see full tracebacks instead.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


__all__ = ["main", "build_parser", "CLIError"]

PROG = "numpyvae"
DEFAULT_OUT = os.path.join("runs", "latest")
DEFAULT_EPOCHS = 30
TOY_SETS = ("two-moons", "gaussian-mixture", "pinwheel")
LIKELIHOOD_CHOICES = ("bernoulli", "gaussian", "gaussian_learned")
ACTIVATION_CHOICES = ("relu", "leaky_relu", "tanh", "sigmoid", "softplus", "identity")
OPTIMIZER_CHOICES = ("sgd", "momentum", "adagrad", "adam")


class CLIError(Exception):
    """A user-facing error: printed as one line ``numpyvae: error: <message>``, exit code 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block plus a message; we want exactly one line and exit 2.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


# ----------------------------------------------------------------------------------------------
# argument types
# ----------------------------------------------------------------------------------------------
def _number(cast, lower: float, strict: bool, what: str):
    """An argparse type: ``cast(text)``, finite and above ``lower`` (or at least it if not strict)."""
    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not np.isfinite(v) or v < lower or (strict and v == lower):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v
    return parse


_positive_int = _number(int, 0, True, "a positive integer")
_nonneg_int = _number(int, 0, False, "a non-negative integer")
_positive_float = _number(float, 0.0, True, "a positive number")
_nonneg_float = _number(float, 0.0, False, "a non-negative number")


def _hidden(text: str) -> tuple:
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


def _dataset_names() -> List[str]:
    from ..data import DATASETS

    return list(DATASETS)


# ----------------------------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------------------------
def build_parser(preset: Optional[str] = None) -> argparse.ArgumentParser:
    """Return the ``argparse`` parser of the ``numpyvae`` command (subcommands train,
    gradcheck, evaluate); with ``preset`` the train options default to that preset's values."""
    p = _Parser(prog=PROG, description="A variational autoencoder in NumPy with hand-written gradients.")
    from .. import __version__

    p.add_argument("--version", action="version", version=f"numpyvae {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a VAE and write checkpoint, history and figures",
                       description="Train a VAE; writes checkpoint.npz (+ .json), history.csv/.json and PNG figures to --out.")
    t.add_argument("--dataset", default="mnist-embedded", help="data set name (default: mnist-embedded, shipped with the package)")
    t.add_argument("--data-dir", default=None, help="directory with real data sets (default: $NUMPYVAE_DATA)")
    t.add_argument("--z-dim", type=_positive_int, default=20, help="latent dimension (default 20)")
    t.add_argument("--hidden", type=_hidden, default=(400,), help="hidden layer sizes, e.g. '400' or '200,200'; '' for none (default 400)")
    t.add_argument("--activation", choices=ACTIVATION_CHOICES, default="relu")
    t.add_argument("--likelihood", choices=LIKELIHOOD_CHOICES, default=None,
                   help="decoder likelihood (default: bernoulli for images, gaussian for 2-D toy data)")
    t.add_argument("--c", type=_positive_float, default=1.0, help="variance of the fixed-variance Gaussian decoder (default 1)")
    t.add_argument("--k", type=_positive_int, default=1, help="Monte Carlo samples per example (default 1)")
    t.add_argument("--kl", choices=("closed", "mc"), default="closed", help="closed-form or Monte Carlo KL (default closed)")
    t.add_argument("--beta", type=_nonneg_float, default=1.0, help="weight of the KL term (default 1)")
    t.add_argument("--warmup-epochs", type=_nonneg_float, default=0.0, help="linear KL warm-up length in epochs (default 0: none)")
    t.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS, help=f"epochs (default {DEFAULT_EPOCHS})")
    t.add_argument("--batch-size", type=_positive_int, default=100, help="minibatch size (default 100)")
    t.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default="adam")
    t.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate (default 1e-3)")
    t.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the data split, the model and the trainer (default 0)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    t.add_argument("--binarize", choices=("auto", "dynamic", "fixed", "none"), default="auto",
                   help="binarisation of grey-level images (default auto: dynamic for the Bernoulli likelihood)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--max-train", type=_positive_int, default=None, help="use only the first N training examples")
    t.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out/checkpoint.npz up to --epochs total (model, data and "
                        "training options come from the checkpoint)")
    _preset_hook_parser(t, preset)

    g = sub.add_parser("gradcheck", help="finite-difference check of every gradient of a small model",
                       description="Build a small float64 VAE (12-8-3 by default), fix eps, and compare the analytic "
                                   "gradient of the loss with central differences for every parameter.")
    g.add_argument("--likelihood", choices=LIKELIHOOD_CHOICES + ("all",), default="all")
    g.add_argument("--activation", choices=ACTIVATION_CHOICES, default="tanh")
    g.add_argument("--x-dim", type=_positive_int, default=12)
    g.add_argument("--hidden", type=_hidden, default=(8,))
    g.add_argument("--z-dim", type=_positive_int, default=3)
    g.add_argument("--batch-size", type=_positive_int, default=5)
    g.add_argument("--k", type=_positive_int, default=2)
    g.add_argument("--kl", choices=("closed", "mc"), default="closed")
    g.add_argument("--beta", type=_nonneg_float, default=1.0)
    g.add_argument("--seed", type=_nonneg_int, default=0)

    e = sub.add_parser("evaluate", help="negative ELBO (and optionally importance-sampled log-likelihood) of a checkpoint",
                       description="Evaluate a checkpoint on the test split (the validation split when the data set has no test split).")
    e.add_argument("checkpoint", help="path of a checkpoint.npz written by 'numpyvae train'")
    e.add_argument("--dataset", default=None, help="override the data set recorded in the checkpoint")
    e.add_argument("--data-dir", default=None, help="directory with real data sets (default: $NUMPYVAE_DATA)")
    e.add_argument("--split", choices=("auto", "test", "val"), default="auto", help="default auto: test if present, else val")
    e.add_argument("--k", type=_positive_int, default=1, help="Monte Carlo samples for the ELBO (default 1)")
    e.add_argument("--iw-k", type=_positive_int, default=None, help="also estimate log p(x) by importance sampling with K samples")
    e.add_argument("--batch-size", type=_positive_int, default=500)
    e.add_argument("--seed", type=_nonneg_int, default=None,
                   help="seed of the evaluation noise (default: the run's seed, so K = 1 on the validation split "
                        "reproduces the last validation number of the history)")
    e.add_argument("--max-examples", type=_positive_int, default=None, help="evaluate only the first N examples")

    sub.add_parser("assignment", add_help=False,
                   help="instructors: 'assignment make DIR' writes student stubs, "
                        "'assignment grade FILE' grades them by gradient checks")
    return p


# ----------------------------------------------------------------------------------------------
# --preset (training/presets.py): three hooks, kept apart from the rest of the CLI
# ----------------------------------------------------------------------------------------------
def _preset_hook_parser(t: argparse.ArgumentParser, preset: Optional[str]) -> None:
    from ..training.presets import add_preset_arguments, cli_defaults

    add_preset_arguments(t)
    if preset:
        t.set_defaults(**cli_defaults(preset))   # the preset's values; flags given still win


def _preset_hook_reparse(a: argparse.Namespace, argv: List[str]) -> argparse.Namespace:
    if getattr(a, "preset", None):
        return build_parser(a.preset).parse_args(argv)
    return a


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _data_dir(arg: Optional[str]) -> Optional[str]:
    d = arg if arg is not None else os.environ.get("NUMPYVAE_DATA") or None
    if d is not None and not os.path.isdir(os.path.expanduser(d)):
        src = "--data-dir" if arg is not None else "$NUMPYVAE_DATA"
        raise CLIError(f"data directory not found: {d} (from {src})")
    return d


def _load_data(name: str, data_dir: Optional[str], seed: int, binarize: Optional[str]):
    from ..data import DATASETS, load_dataset

    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r} (choose from: {', '.join(DATASETS)})")
    return load_dataset(name, data_dir=data_dir, seed=seed, binarize=binarize)


def _write_history(history: Dict[str, List[float]], out: str) -> Dict[str, str]:
    from ..training.checkpoint import atomic_write
    from ..training.trainer import HISTORY_COLUMNS

    cols = [c for c in HISTORY_COLUMNS if c in history]
    n = len(history.get("epoch", []))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for i in range(n):
        w.writerow([history[c][i] if isinstance(history[c][i], int) else repr(float(history[c][i])) for c in cols])
    csv_path = atomic_write(os.path.join(out, "history.csv"), lambda fh: fh.write(buf.getvalue().encode("utf-8")))
    # strict JSON: a missing value (e.g. no validation set) is null, not NaN
    clean = {c: [v if isinstance(v, int) or np.isfinite(v) else None for v in history[c]] for c in cols}
    js = json.dumps(clean, indent=1)
    json_path = atomic_write(os.path.join(out, "history.json"), lambda fh: fh.write((js + "\n").encode("utf-8")))
    return {"history_csv": csv_path, "history_json": json_path}


def _fmt(x: float) -> str:
    return f"{x:.2f}"


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
def _cmd_train(a: argparse.Namespace) -> int:
    from ..training import plots
    from ..model import VAE
    from ..training.trainer import TrainConfig, Trainer, TrainingDiverged

    t_start = time.perf_counter()
    data_dir = _data_dir(a.data_dir)
    if a.dataset not in _dataset_names():
        raise CLIError(f"unknown dataset {a.dataset!r} (choose from: {', '.join(_dataset_names())})")
    toy = a.dataset in TOY_SETS
    likelihood = a.likelihood or ("gaussian" if toy else "bernoulli")
    if toy and likelihood == "bernoulli":
        raise CLIError(f"--likelihood bernoulli needs data in [0, 1]; {a.dataset} is 2-D real-valued data (use gaussian)")
    if toy and a.binarize in ("dynamic", "fixed"):
        raise CLIError(f"--binarize {a.binarize} applies to grey-level images, not to the 2-D set {a.dataset}")
    already_binary = a.dataset == "binarized-mnist"
    if a.binarize == "auto":
        mode = "dynamic" if (likelihood == "bernoulli" and not toy and not already_binary) else None
    else:
        mode = None if a.binarize == "none" else a.binarize
    if already_binary and mode is not None:
        raise CLIError("--binarize: binarized-mnist is already binary (use --binarize none or auto)")

    out = a.out
    ckpt_path = os.path.join(out, "checkpoint.npz")
    data_seed, max_train, name = a.seed, a.max_train, a.dataset
    if a.resume:
        # the data must be exactly the run's: take its description from the checkpoint
        from ..training.checkpoint import load as load_checkpoint

        if not os.path.exists(ckpt_path):
            raise CLIError(f"--resume: no checkpoint at {ckpt_path}")
        saved = load_checkpoint(ckpt_path).extra
        if "dataset" not in saved:
            raise CLIError(f"--resume: {ckpt_path} does not record its data set")
        name, mode = saved["dataset"], saved.get("binarize")
        data_seed, max_train = int(saved.get("data_seed", 0)), saved.get("max_train")
    ds = _load_data(name, data_dir, data_seed, mode)
    x_train = ds.x_train if max_train is None else ds.x_train[: max_train]
    x_val, y_val = ds.x_val, ds.y_val

    if a.resume:
        trainer = Trainer.resume(ckpt_path, x_train, x_val, epochs=a.epochs, progress=not a.no_progress)
    else:
        vae = VAE(x_dim=ds.x_dim, z_dim=a.z_dim, hidden=a.hidden, likelihood=likelihood, activation=a.activation,
                  c=a.c, seed=a.seed, dtype=np.dtype(a.dtype))
        cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr, beta=a.beta,
                          warmup_epochs=a.warmup_epochs, k=a.k, kl=a.kl, binarize=(mode == "dynamic"),
                          seed=a.seed, progress=not a.no_progress)
        from ..training.presets import apply_preset_config
        cfg = apply_preset_config(getattr(a, "preset", None), cfg)    # --preset: optimizer kwargs, lr schedule
        extra = {"dataset": a.dataset, "binarize": mode, "data_seed": a.seed, "max_train": a.max_train,
                 "n_train": int(x_train.shape[0])}
        os.makedirs(out, exist_ok=True)
        trainer = Trainer(vae, x_train, x_val, cfg, checkpoint_path=ckpt_path, extra=extra)

    def report(tr: Any, row: Dict[str, float]) -> None:
        if a.no_progress:
            return
        print(f"epoch {row['epoch']:>3}/{tr.config.epochs}  train -ELBO {row['train_neg_elbo']:8.2f}  "
              f"val -ELBO {row['val_neg_elbo']:8.2f} (recon {row['val_recon']:7.2f} + KL {row['val_kl']:6.2f})  "
              f"beta {row['beta']:.3g}  {tr.epoch_times[-1]:.1f}s", file=sys.stderr, flush=True)

    try:
        history = trainer.fit(callbacks=[report])
    except TrainingDiverged as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    t_train = time.perf_counter() - t_start

    _write_history(history, out)
    fig_x = trainer.val_data if trainer.val_data is not None else x_train
    fig_y = y_val if trainer.val_data is not None else ds.y_train
    figs = plots.make_figures(trainer.vae, fig_x, out, history=history, y_val=fig_y, image_shape=ds.image_shape,
                              seed=a.seed)
    t_total = time.perf_counter() - t_start
    from ..training.presets import preset_epilogue
    preset_epilogue(a, trainer, ds)    # --preset: the paper's evaluation and the projected time

    last = {c: history[c][-1] for c in history}
    print(f"finished {trainer.epoch} epochs ({trainer.step} steps) on {name} "
          f"[{trainer.x_train.shape[0]} train / {0 if x_val is None else x_val.shape[0]} val] "
          f"in {t_train:.1f}s (with figures {t_total:.1f}s)")
    print(f"validation negative ELBO: {_fmt(last['val_neg_elbo'])} nats "
          f"= reconstruction {_fmt(last['val_recon'])} + KL {_fmt(last['val_kl'])}")
    print(f"train negative ELBO (epoch average): {_fmt(last['train_neg_elbo'])} nats"
          + (f"; training objective (beta={last['beta']:.3g}): {_fmt(last['train_loss'])}" if last['beta'] != 1.0 else ""))
    print(f"files in {os.path.abspath(out)}: checkpoint.npz, checkpoint.json, history.csv, history.json, "
          + ", ".join(os.path.basename(p) for p in figs.values()))
    return 0


# ----------------------------------------------------------------------------------------------
# gradcheck
# ----------------------------------------------------------------------------------------------
def _cmd_gradcheck(a: argparse.Namespace) -> int:
    from ..gradcheck import check_model
    from ..model import VAE

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
    from ..training import checkpoint as ck
    from ..training.trainer import evaluate

    t0 = time.perf_counter()
    c = ck.load(a.checkpoint)  # CheckpointError -> one line, exit 2
    vae = c.build_model()
    name = a.dataset or c.extra.get("dataset")
    if not name:
        raise CLIError(f"{a.checkpoint}: the checkpoint does not record its data set; pass --dataset")
    mode = c.extra.get("binarize")
    if a.dataset and a.dataset != c.extra.get("dataset"):
        mode = None if a.dataset in TOY_SETS or a.dataset == "binarized-mnist" else mode
    data_seed = int(c.extra.get("data_seed", 0))
    ds = _load_data(name, _data_dir(a.data_dir), data_seed, mode)
    if ds.x_dim != int(vae.config["x_dim"]):
        raise CLIError(f"data set {name} has D = {ds.x_dim} but the model expects x_dim = {vae.config['x_dim']}")
    split = a.split
    if split == "auto":
        split = "test" if ds.x_test is not None else "val"
    if split == "test":
        if ds.x_test is None:
            raise CLIError(f"data set {name} has no test split (use --split val)")
        x = ds.x_test
    else:
        x = ds.x_val
    if a.max_examples is not None:
        x = x[: a.max_examples]
    x = np.asarray(x, dtype=vae.dtype)
    dynamic = mode == "dynamic"
    seed = a.seed if a.seed is not None else int(c.train_config.get("seed", 0))
    kl = c.train_config.get("kl", "closed")
    res = evaluate(vae, x, seed=seed, batch_size=a.batch_size, k=a.k, kl=kl, binarize=dynamic)
    note = " (binarised once with a fixed seed)" if dynamic else ""
    print(f"checkpoint {a.checkpoint}: epoch {c.epoch}, step {c.step}")
    print(f"{name} {split} split, {res['n']} examples{note}, K = {a.k}:")
    print(f"negative ELBO: {_fmt(res['neg_elbo'])} nats = reconstruction {_fmt(res['recon'])} + KL {_fmt(res['kl'])}")
    if a.iw_k is not None:
        try:
            from ..theory.estimators import log_likelihood
        except ImportError:
            raise CLIError("--iw-k needs numpyvae.theory.estimators.log_likelihood, which is not available") from None
        from ..training.trainer import _seed_streams, binarize_batch

        xi = x
        if dynamic:
            xi = binarize_batch(x, np.random.default_rng(_seed_streams(seed)["val_binarize"]))
        ll = np.asarray(log_likelihood(vae, xi, k=a.iw_k, rng=np.random.default_rng(seed + 12345)))
        print(f"importance-sampled log p(x), K = {a.iw_k}: {_fmt(float(ll.mean()))} nats "
              f"(negative: {_fmt(-float(ll.mean()))})")
    print(f"time: {time.perf_counter() - t0:.1f}s")
    return 0


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------
def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``numpyvae`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    0 success; 1 training diverged or a gradient check failed; 2 bad arguments or inputs (one
    line ``numpyvae: error: ...`` on stderr, no traceback unless ``NUMPYVAE_DEBUG`` is set).
    """
    from ..training.checkpoint import CheckpointError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("NUMPYVAE_DEBUG"))
    if argv[:1] == ["assignment"]:
        from ..teaching.assignments import main as assignment_main
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
    except (CLIError, CheckpointError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError, TypeError) as exc:
        if debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
