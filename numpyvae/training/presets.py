"""The papers' training protocols as data: ``numpyvae train --preset NAME``.

A preset fixes the architecture, the data and its binarization, the optimizer and its
settings, the epoch count and learning-rate schedule, and the final evaluation, as the paper
describes them, together with the number the paper reports. Flags given on the command line
still win over the preset's values (the preset only changes the defaults).

Presets:

* ``kingma2014-mnist``, ``kingma2014-frey`` -- Kingma & Welling, "Auto-Encoding Variational
  Bayes" (ICLR 2014), section 5: one hidden tanh layer (500 units for MNIST, 200 for Frey
  Face), minibatch M = 100, L = 1 sample, Adagrad with a global step size from
  {0.01, 0.02, 0.1} (0.02 here), weight decay for a N(0, I) prior on the parameters, and the
  lower bound followed up to 10^8 training samples. The paper reports curves (its Figure 2),
  not a table, so ``reference`` is None and ``reference_note`` says where to read it.
* ``burda2016-vae``, ``burda2016-iwae`` -- Burda, Grosse & Salakhutdinov, "Importance Weighted
  Autoencoders" (ICLR 2016), section 5: 784-200-200-50 tanh, one stochastic layer, MNIST with
  dynamic binarization, Adam (beta1 0.9, beta2 0.999, eps 1e-4), batch 20, 3^i epochs at
  learning rate 0.001 * 10^(-i/7) for i = 0..7 (3280 epochs), test log-likelihood L_5000.
  Table 1, one stochastic layer: VAE k = 1: 86.76 nats; IWAE k = 50: 84.78 nats.
  ``burda2016-iwae`` needs the IWAE objective (``VAE(objective="iwae")``) and says so clearly
  when this build of numpyvae does not have it.

Differences from the papers that a user should know: numpyvae's MNIST keeps 10,000 of the
60,000 training images for validation (the papers trained on all 60,000); Kingma & Welling
initialised weights from N(0, 0.01), numpyvae uses its own initialisation.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Preset", "PRESETS", "LR_SCHEDULES", "get_preset", "lr_at_epoch", "burda2016_lr",
           "cli_defaults", "add_preset_arguments", "apply_preset_config",
           "evaluate_preset", "preset_epilogue", "projected_seconds", "write_preset_report"]


@dataclass(frozen=True)
class Preset:
    """One paper's protocol. ``cli`` holds the values of ``numpyvae train``'s options
    (argparse destinations); ``optimizer_kwargs`` and ``lr_schedule`` go into the
    ``TrainConfig``; ``eval_k`` is the K of the final importance-sampled log-likelihood."""

    name: str
    paper: str
    where: str
    cli: dict[str, Any]
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    lr_schedule: str | None = None
    eval_k: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    reference: float | None = None             # nats, the paper's -log p(x) (lower is better)
    reference_metric: str = ""
    reference_note: str = ""
    paper_epochs: int = 0


KINGMA = "Kingma & Welling, Auto-Encoding Variational Bayes (ICLR 2014)"
BURDA = "Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders (ICLR 2016)"
BURDA_EPOCHS = sum(3 ** i for i in range(8))        # 3280

PRESETS: dict[str, Preset] = {
    "kingma2014-mnist": Preset(
        name="kingma2014-mnist", paper=KINGMA, where="section 5 and Figure 2",
        cli=dict(dataset="mnist", hidden=(500,), activation="tanh", z_dim=20,
                 likelihood="bernoulli", batch_size=100, k=1, optimizer="adagrad", lr=0.02,
                 binarize="dynamic", epochs=2000),
        # weight decay for a N(0, I) prior on the parameters with the loss averaged over
        # the 50,000 training examples: d/dtheta of ||theta||^2 / (2 N) = theta / N
        optimizer_kwargs=dict(weight_decay=1.0 / 50000),
        reference=None, reference_metric="variational lower bound (test), N_z = 20",
        reference_note="the paper plots the lower bound against training samples evaluated "
                       "(Figure 2, up to 10^8 samples) and gives no table; compare with the curve",
        paper_epochs=2000),              # 10^8 samples / 50,000 examples
    "kingma2014-frey": Preset(
        name="kingma2014-frey", paper=KINGMA, where="section 5 and Figure 2",
        cli=dict(dataset="frey", hidden=(200,), activation="tanh", z_dim=10,
                 likelihood="gaussian_learned", batch_size=100, k=1, optimizer="adagrad",
                 lr=0.02, binarize="none", epochs=56657),
        optimizer_kwargs=dict(weight_decay=1.0 / 1765),
        reference=None, reference_metric="variational lower bound (test), N_z = 10",
        reference_note="Figure 2 of the paper (curves only, up to 10^8 samples); no table",
        paper_epochs=56657),             # 10^8 samples / 1,765 examples
    "burda2016-vae": Preset(
        name="burda2016-vae", paper=BURDA, where="section 5 and Table 1",
        cli=dict(dataset="mnist", hidden=(200, 200), activation="tanh", z_dim=50,
                 likelihood="bernoulli", batch_size=20, k=1, optimizer="adam", lr=1e-3,
                 binarize="dynamic", epochs=BURDA_EPOCHS),
        optimizer_kwargs=dict(betas=(0.9, 0.999), eps=1e-4), lr_schedule="burda2016",
        eval_k=5000, reference=86.76,
        reference_metric="test -log p(x), L_5000, VAE, one stochastic layer, k = 1",
        reference_note="Table 1", paper_epochs=BURDA_EPOCHS),
    "burda2016-iwae": Preset(
        name="burda2016-iwae", paper=BURDA, where="section 5 and Table 1",
        cli=dict(dataset="mnist", hidden=(200, 200), activation="tanh", z_dim=50,
                 likelihood="bernoulli", batch_size=20, k=50, optimizer="adam", lr=1e-3,
                 binarize="dynamic", epochs=BURDA_EPOCHS, objective="iwae"),
        optimizer_kwargs=dict(betas=(0.9, 0.999), eps=1e-4), lr_schedule="burda2016",
        eval_k=5000, model_kwargs=dict(objective="iwae"), reference=84.78,
        reference_metric="test -log p(x), L_5000, IWAE, one stochastic layer, k = 50",
        reference_note="Table 1", paper_epochs=BURDA_EPOCHS),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (ValueError naming the choices otherwise)."""
    if name not in PRESETS:
        raise ValueError(f"preset: unknown preset {name!r} (choose from: {', '.join(PRESETS)})")
    return PRESETS[name]


# ------------------------------------------------------------------ learning-rate schedules
def burda2016_lr(epoch: int, lr0: float = 1e-3) -> float:
    """Burda et al.'s schedule: the epochs run in passes i = 0..7 of 3^i epochs each, pass i at
    lr0 * 10^(-i/7). ``epoch`` is 0-based; after the 3280 epochs the last rate stays."""
    if epoch < 0:
        raise ValueError(f"epoch: expected a non-negative integer, got {epoch!r}")
    i, end = 0, 1
    while epoch >= end and i < 7:
        i += 1
        end += 3 ** i
    return lr0 * 10.0 ** (-i / 7)


LR_SCHEDULES: dict[str, Callable[[int, float], float]] = {"burda2016": burda2016_lr}


def lr_at_epoch(schedule: str | None, lr0: float, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch`` under ``schedule`` (None: constant lr0)."""
    if schedule is None:
        return lr0
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule: expected one of {sorted(LR_SCHEDULES)} or None, got {schedule!r}")
    return LR_SCHEDULES[schedule](epoch, lr0)


# ------------------------------------------------------------------------ the CLI's hooks
def cli_defaults(name: str) -> dict[str, Any]:
    """The preset's values for ``numpyvae train``'s options (argparse destinations)."""
    p = get_preset(name)
    return dict(p.cli, preset=name)


def add_preset_arguments(parser: Any) -> None:
    """Add ``--preset`` and its evaluation options to the ``train`` subcommand's parser."""
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="a paper's protocol: " + "; ".join(
                            f"{n} ({p.paper.split(',')[0]} {p.paper[-5:-1]})" for n, p in PRESETS.items())
                        + ". Sets the defaults of the other options (flags given still win)")
    parser.add_argument("--preset-eval-k", type=int, default=None,
                        help="K of the preset's final importance-sampled log p(x) (default: the paper's)")
    parser.add_argument("--preset-eval-n", type=int, default=None,
                        help="evaluate the preset's final log p(x) on the first N test images only")


def apply_preset_config(name: str | None, cfg: Any) -> Any:
    """``cfg`` (a TrainConfig) with the preset's optimizer settings and lr schedule added."""
    if not name:
        return cfg
    p = get_preset(name)
    d = cfg.to_dict()
    d["optimizer_kwargs"] = {**p.optimizer_kwargs, **d.get("optimizer_kwargs", {})}
    d["lr_schedule"] = p.lr_schedule
    return type(cfg).from_dict(d)


def projected_seconds(epoch_seconds: float, preset: Preset) -> float:
    """Time to the paper's epoch count at ``epoch_seconds`` per epoch."""
    return float(epoch_seconds) * preset.paper_epochs


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d or h:
        return (f"{d} d " if d else "") + f"{h:d} h {m:02d} min"
    return f"{m} min {s:02d} s"


def evaluate_preset(name: str, vae: Any, x_eval: np.ndarray, *, epoch_seconds: float | None = None,
                    epochs_done: int = 0, k: int | None = None, n: int | None = None,
                    seed: int = 0, out: Any = None) -> dict[str, Any]:
    """The preset's final evaluation: -log p(x) by importance sampling with K = eval_k (the
    paper's L_5000) on ``x_eval`` (binary rows), with progress and time printed to ``out``
    (default stderr), the paper's number beside it and the projected time to its epochs."""
    from ..theory.estimators import log_likelihood

    p = get_preset(name)
    out = sys.stderr if out is None else out
    k = k or p.eval_k or 5000
    x = np.asarray(x_eval if n is None else x_eval[:n], dtype=np.float64)
    model = vae.astype(np.float64)
    last = [0.0]

    def progress(done, total, secs):
        if secs - last[0] >= 10 or done == total:
            last[0] = secs
            left = secs / done * (total - done)
            print(f"  L_{k}: {done}/{total} images, {secs:.0f} s, about {left:.0f} s left",
                  file=out, flush=True)

    t0 = time.perf_counter()
    ll = log_likelihood(model, x, k=k, rng=np.random.default_rng(seed), progress=progress)
    secs = time.perf_counter() - t0
    nll = float(-ll.mean())
    res = {"preset": name, "k": k, "n": int(x.shape[0]), "neg_log_px": nll,
           "stderr": float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else float("nan"),
           "seconds": secs, "reference": p.reference, "epochs_done": epochs_done,
           "paper_epochs": p.paper_epochs}
    ref = (f"paper: {p.reference:.2f} nats ({p.reference_metric}; {p.reference_note})"
           if p.reference is not None else f"paper: {p.reference_note}")
    print(f"preset {name}: -log p(x) = {nll:.2f} +- {res['stderr']:.2f} nats (L_{k}, {x.shape[0]} "
          f"images, {secs:.0f} s) after {epochs_done} of the paper's {p.paper_epochs} epochs; {ref}",
          file=out, flush=True)
    if epoch_seconds:
        res["projected_seconds"] = projected_seconds(epoch_seconds, p)
        print(f"  at {epoch_seconds:.1f} s per epoch the paper's {p.paper_epochs} epochs take about "
              f"{_hms(res['projected_seconds'])}; continue with --resume", file=out, flush=True)
    return res


def preset_epilogue(args: Any, trainer: Any, ds: Any, out: Any = None) -> dict[str, Any] | None:
    """After ``numpyvae train --preset NAME``: the paper's evaluation (if it has one) on the test
    images (binarised once, seeded, when the preset binarises dynamically), else the
    validation images, and the projected time to the paper's epoch count. Writes
    ``preset.json`` (the numbers) and ``preset_curve.png`` (the run against the paper) beside
    the checkpoint."""
    name = getattr(args, "preset", None)
    if not name:
        return None
    p = get_preset(name)
    out = sys.stderr if out is None else out
    times = getattr(trainer, "epoch_times", []) or []
    epoch_s = float(np.median(times)) if times else None
    if p.eval_k is None:
        if epoch_s:
            print(f"preset {name}: {epoch_s:.1f} s per epoch; the paper's {p.paper_epochs} epochs "
                  f"take about {_hms(projected_seconds(epoch_s, p))}; paper: {p.reference_note}",
                  file=out, flush=True)
        res = {"preset": name, "epoch_seconds": epoch_s, "epochs_done": trainer.epoch,
               "paper_epochs": p.paper_epochs,
               "projected_seconds": projected_seconds(epoch_s, p) if epoch_s else None}
    else:
        x = ds.x_test if getattr(ds, "x_test", None) is not None else ds.x_val
        if p.cli.get("binarize") == "dynamic":
            from ..data import binarize_dynamic
            x = binarize_dynamic(x, np.random.default_rng([int(getattr(args, "seed", 0)), 5000]))
        res = evaluate_preset(name, trainer.vae, x, epoch_seconds=epoch_s, epochs_done=trainer.epoch,
                              k=getattr(args, "preset_eval_k", None), n=getattr(args, "preset_eval_n", None),
                              seed=int(getattr(args, "seed", 0)), out=out)
        res["epoch_seconds"] = epoch_s
    res["train_seconds"] = float(sum(times))
    if getattr(trainer, "checkpoint_path", None):
        write_preset_report(os.path.dirname(os.path.abspath(trainer.checkpoint_path)), name, trainer.history,
                            int(trainer.x_train.shape[0]), res)
    return res


def write_preset_report(run_dir: str, name: str, history: Any, n_train: int, res: dict[str, Any]) -> dict[str, str]:
    """``preset.json`` (``res``) and ``preset_curve.png`` in ``run_dir``; returns their paths."""
    from . import plots
    from .checkpoint import atomic_write

    p = get_preset(name)
    js = json.dumps(res, indent=1, default=float) + "\n"
    json_path = atomic_write(os.path.join(run_dir, "preset.json"), lambda fh: fh.write(js.encode("utf-8")))
    done = int(res.get("epochs_done") or 0)
    note = (f"{done} of the paper's {p.paper_epochs} epochs in {_hms(res.get('train_seconds') or 0)}"
            + (f"; all of them: about {_hms(res['projected_seconds'])}" if res.get("projected_seconds") else ""))
    ref_label = (f"paper: {p.reference:.2f} ({p.reference_note}, {p.reference_metric.split(',')[0]})"
                 if p.reference is not None else "")
    png = plots.plot_preset_curve(history, os.path.join(run_dir, "preset_curve.png"), n_train=n_train,
                                  reference=p.reference, reference_label=ref_label,
                                  result=res if "neg_log_px" in res else None, note=note,
                                  title=f"--preset {name}: {p.paper.split(' (')[0]}")
    return {"json": json_path, "png": png}
