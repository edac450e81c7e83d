"""``numpyvae train``: a fresh run or a resumed one, trained by the one ``Trainer``; the lines
it prints epoch by epoch; after a stop (a divergence, a stopped worker, Ctrl-C, SIGTERM or
SIGHUP) what is kept and the command that continues the run.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from . import errors, stopping
from .common import data_folder, extras, fmt, load_data, say, threads_choice
from .errors import CLIError
from .models import build_model, check_family_flags, check_train_memory, train_mode
from .parser import TRAIN_DEFAULTS
from .runs import RUN_FILES, RUNS_ROOT, check_out_is_free, open_run_to_resume, resume_command
from ..speed import Speed, fused, heap, threads
from ..speed.split import MIN_ROWS, split_sizes
from ..training import checkpoint as ck
from ..training import rundir
from ..training.presets import apply_preset_config, preset_epilogue
from ..training.trainer import TrainConfig, Trainer, TrainingDiverged, TrainingStopped

__all__ = ["cmd_train", "sidecar"]


def cmd_train(a: argparse.Namespace) -> int:
    held: list[rundir.RunLock] = []  # the lock of the run directory, once taken
    try:
        with stopping.stop_signals():   # SIGTERM and SIGHUP stop like Ctrl-C
            return _train(a, held)
    except OSError as exc:  # a full disk, a read-only folder: name the file and the way on
        run = held[0].directory if held else None
        raise CLIError(errors.os_error_message(exc, run, run and resume_command(run, a.data_dir))) from exc
    finally:
        for lock in held:
            lock.release()


def _parse_train(a: argparse.Namespace) -> set[str]:
    """Fill in the train defaults; return the names of the options given on the command line."""
    given = {k for k in TRAIN_DEFAULTS if getattr(a, k, None) is not None}
    for k, v in TRAIN_DEFAULTS.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    return given


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
        say(f"--resume: {k} {old} -> {new} (recorded in {sidecar(ckpt_path)})")
    return trainer


def _fused_line(model: object) -> str:
    """What the fast extra's fused kernels do in this run, and where they came from."""
    how = {"cache": "loaded from the cache", "built": "compiled for this machine",
           "in process": "compiled by numba in this process"}.get(fused.source, fused.source)
    what = ("the step's elementwise work and Adam" if fused.fits(model)
            else "Adam only (the fused step takes the plain Bernoulli VAE with ReLU or tanh)")
    return f"fused kernels: {what}, {how} in {fused.load_seconds:.1f} s (the plain step's numbers, to rounding)"


def _train(a: argparse.Namespace, held: list[rundir.RunLock]) -> int:
    t_start = time.perf_counter()
    given = _parse_train(a)
    check_family_flags(a)
    found = None
    if a.resume:
        found = open_run_to_resume(a, given, held)
        if found is None:
            return 0  # the run has finished its epochs: nothing to do, and it said so
    progress = not a.no_progress and sys.stderr.isatty()
    n_threads, blas_line, blas_record = threads_choice(a.threads, split=True)
    data_dir = data_folder(a.data_dir)

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
        likelihood, mode = train_mode(a)
        conditional = a.conditional
        name, data_seed, max_train = a.dataset, a.seed, a.max_train
        out = a.out
        if out == "":
            raise CLIError("--out: expected a directory name, got ''")
        if out is not None:
            check_out_is_free(out, a.force, held)

    # training never reads a test split: the test files need not exist
    ds = load_data(name, data_dir, data_seed, mode, test=False,
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
        check_train_memory(a, ds.x_dim, likelihood, ds.image_shape)
        fresh_default = out is None
        try:
            if out is None:
                out = rundir.new_run_dir(RUNS_ROOT, name)
            else:
                os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise errors.create_error(out or RUNS_ROOT, exc) from None

    if not held:
        held.append(rundir.RunLock(out, say=say).acquire())
        if not a.resume:  # another run may have finished in --out since the first look
            check_out_is_free(out, a.force, held)
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
                say(f"--force: removed the previous run's files from {out} ({', '.join(removed)})")
        if fresh_default:
            note = rundir.point_latest(RUNS_ROOT, out)
            if note:
                say(note)
        ckpt_path = os.path.join(out, "checkpoint.npz")
        n_classes = int(max(labels["y_train"].max(), labels["y_val"].max())) + 1 if labels else None
        vae = build_model(a, ds.x_dim, likelihood, n_classes, ds.image_shape)
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
    say(f"run directory: {out}")
    say(blas_line)
    parts = len(split_sizes(trainer.config.batch_size, trainer.config.k, n_threads))
    if n_threads > 1 and parts < n_threads:
        say(f"threads: a minibatch of {trainer.config.batch_size} x {trainer.config.k} sample(s) splits into "
            f"{parts} part{'s' if parts != 1 else ''} of at least {MIN_ROWS} decoder rows: "
            f"{parts} thread{'s' if parts != 1 else ''} will work")
    heap_line = heap.keep_freed_heap()
    if heap_line:
        say(heap_line)
    if trainer.speed.fused:          # the fast extra is installed and its kernels load
        say(_fused_line(trainer.model))

    def report(tr: Trainer, row: dict[str, float]) -> None:
        print(f"epoch {row['epoch']:>3}/{tr.config.epochs}  train -ELBO {row['train_neg_elbo']:8.2f}  "
              f"val -ELBO {row['val_neg_elbo']:8.2f} (recon {row['val_recon']:7.2f} + KL {row['val_kl']:6.2f})  "
              f"beta {row['beta']:.3g}  {tr.epoch_times[-1]:.1f}s{extras(row)}", file=sys.stderr, flush=True)

    stopped: BaseException | None = None
    with threads.blas_threads(n_threads):
        try:
            history = trainer.fit(callbacks=[report], stop_after=_seconds(a.time_limit))
        except (TrainingDiverged, KeyboardInterrupt, TrainingStopped) as exc:
            stopped, history = exc, trainer.history  # the trainer is back at its last good state
        t_train = time.perf_counter() - t_start
        gov = trainer.speed.governor
        if gov is not None and gov.counts[False]:
            say(f"threads: {gov.counts[False]} of {gov.steps} steps ran whole, not split "
                f"({'whole steps measured faster at the end' if not gov.best else 'probes, or a busy spell'})")
        _write_history_json(history, out)
        figs: dict[str, str] = {}
        n_train = trainer.x_train.shape[0]
        if trainer.epoch > 0:
            fig_x = trainer.val_data if trainer.val_data is not None else x_train
            fig_y = y_val if trainer.val_data is not None else ds.y_train
            if conditional:
                fig_y = trainer.y_val if trainer.val_data is not None else trainer.y_train
            if trainer.val_data is not None and not getattr(a, "preset", None):
                # the figures read the validation rows: the training rows (157 MB for MNIST)
                # are let go before matplotlib (about 40 MB, imported only now) comes in
                # (a preset's report still counts them)
                x_train = ds.x_train = trainer.x_train = None
            from ..training import plots
            figs = plots.make_figures(trainer.vae, fig_x, out, history=history, y_val=fig_y,
                                      image_shape=ds.image_shape, seed=data_seed)
    if stopped is not None:
        return _report_stop(stopped, trainer, out, a.data_dir)
    t_total = time.perf_counter() - t_start
    if trainer.epoch < trainer.config.epochs:
        say(f"--time-limit {a.time_limit:g}: stopped after epoch {trainer.epoch} of {trainer.config.epochs}; "
            f"to continue: {resume_command(out, a.data_dir)}")
    if preset_epilogue(a, trainer, ds) is not None:    # --preset: the paper's evaluation, projected time
        figs.update(preset_json=os.path.join(out, "preset.json"), preset=os.path.join(out, "preset_curve.png"))

    last = {c: history[c][-1] for c in history}
    print(f"finished {trainer.epoch} epochs ({trainer.step} steps) on {name} "
          f"[{n_train} train / {0 if x_val is None else x_val.shape[0]} val] "
          f"in {t_train:.1f}s (with figures {t_total:.1f}s)")
    print(f"validation negative ELBO: {fmt(last['val_neg_elbo'])} nats "
          f"= reconstruction {fmt(last['val_recon'])} + KL {fmt(last['val_kl'])}{extras(last)}")
    print(f"train negative ELBO (epoch average): {fmt(last['train_neg_elbo'])} nats"
          + (f"; training objective (beta={last['beta']:.3g}): {fmt(last['train_loss'])}"
             if last['beta'] != 1.0 else ""))
    print(f"files in {os.path.abspath(out)}: checkpoint.npz, checkpoint.json, history.csv, history.json, "
          + ", ".join(os.path.basename(p) for p in figs.values()))
    return 0


def _write_history_json(history: dict[str, list[float]], out: str) -> str:
    """history.json, the history's columns in one JSON document, written once as the run ends
    (the trainer appends history.csv epoch by epoch)."""
    # strict JSON: a missing value (e.g. no validation set) is null, not NaN
    clean = {c: [v if isinstance(v, int) or np.isfinite(v) else None for v in col] for c, col in history.items()}
    js = json.dumps(clean, indent=1)
    return ck.atomic_write(os.path.join(out, "history.json"), lambda fh: fh.write((js + "\n").encode("utf-8")))



def _seconds(minutes: float | None) -> float | None:
    return None if minutes is None else 60.0 * minutes


def sidecar(path: str) -> str:
    """The checkpoint's human-readable JSON twin (``checkpoint.json``)."""
    return ck.sidecar_path(path)


def _report_stop(exc: BaseException, trainer: Trainer, out: str, data_dir: str | None) -> int:
    """After a divergence, a stopped worker or Ctrl-C: say what is kept and how to continue;
    return the exit code (cli/errors.py)."""
    ckpt_path = os.path.join(out, "checkpoint.npz")
    good = "the untrained model" if trainer.epoch == 0 else f"epoch {trainer.epoch} of {trainer.config.epochs}"
    say(errors.stop_line(exc, trainer.epoch + 1))
    say(f"saved: checkpoint {ckpt_path} ({good}), history.csv" + (" and the figures so far" if trainer.epoch else ""))
    if isinstance(exc, TrainingDiverged):
        smaller = min(trainer.config.lr / 10, TRAIN_DEFAULTS["lr"])  # a tenth, or the default if that is less
        say(f"to continue with a smaller learning rate: {resume_command(out, data_dir, lr=f'{smaller:g}')}")
    elif isinstance(exc, TrainingStopped):
        say(f"to continue on one thread: {resume_command(out, data_dir, threads=1)}")
    else:
        say(f"to continue: {resume_command(out, data_dir)}")
    return errors.exit_code(exc)
