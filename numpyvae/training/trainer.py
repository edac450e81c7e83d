"""One minibatch training loop for every model of the package, with reproducible, resumable state.

The model contract
------------------
``Trainer`` trains any object that offers these (``VAE``, ``FamilyVAE``, ``VQVAE`` do, and so
must a new model; register its kind with ``numpyvae._registry.register`` so that checkpoints
and the command line rebuild it):

* ``forward(x, **options) -> terms``: the loss of the minibatch x (B, D) and what it is made
  of, as batch means in nats: ``terms.loss`` (the number ``backward`` differentiates),
  ``terms.elbo``, ``terms.recon``, ``terms.kl``. ``options`` are the names listed in the
  model's ``train_options`` (a subset of ``("k", "beta", "kl")``, the ``TrainConfig`` fields of
  the same names); a model with ``needs_labels`` true is also given ``y=`` the minibatch's labels
  (B,), which travel with the rows through the shuffle. Noise: a model with ``stochastic`` true
  (the default) draws its training noise from ``model.rng`` and, given ``eps`` (K, B, z_dim),
  uses that instead (the validation passes do).
* ``backward()``: writes d loss / d parameters into ``flat_grads``.
* ``flat_params``, ``flat_grads``: 1-D arrays holding every parameter and its gradient
  (``params`` and ``grads`` are named views of them); the optimizer steps on these.
* ``rng``: the model's generator (saved in checkpoints with the trainer's own streams).
* ``config`` (JSON-able, with ``"model": kind``), ``from_config``, ``load_state_dict``.
* optional ``VAL_COLUMNS`` and ``val_extras(terms_list)``: further per-epoch validation numbers
  (the VQ-VAE's codebook perplexity), written to the history as ``val_<name>``.

``Trainer(model, x).fit()`` runs exactly that: shuffle, forward, backward, optimizer step, on the
calling thread, nothing else: no process, no thread pool, no allocator setting. A faster step
(split across threads or processes, Adam in blocks) is a plug-in the caller hands over
(``speed=numpyvae.speed.Speed(...)``, as the command line does), not part of the loop a reader
follows.

Everything random in a run comes from generators derived from one integer seed, so two runs
with the same seed give identical histories, and a run resumed from a checkpoint continues
exactly where the uninterrupted run would have been:

* ``model.rng``               -- the model's noise in training steps (the reparameterisation eps);
* the ``"batch"`` generator   -- the shuffling of the training set at the start of each epoch;
* the ``"binarize"`` generator -- dynamic binarisation of each training minibatch;
* validation noise and the one-off binarisation of the validation set come from generators
  rebuilt from the seed at every evaluation, so validation numbers are comparable between
  epochs and do not depend on how many steps were taken.

"Identical" means bit for bit on the same machine with the same BLAS build and thread count:
a multi-threaded matrix product may sum in a different order with another thread count
(e.g. ``OPENBLAS_NUM_THREADS=1`` versus 2 changes float32 results in the last bits).

Non-finite losses or gradients stop the run with ``TrainingDiverged``, which names the step and
the quantity that went non-finite (the loss and which of its parts, a gradient, a parameter).
The trainer keeps the state at the end of the last finished epoch (parameters, optimizer,
generators, counters, rows of history): with a checkpoint path, the parameters and the optimizer's
state are that epoch's checkpoint on disk, without one a copy in memory. On divergence or
``KeyboardInterrupt`` it returns to that state before re-raising, so ``trainer.vae`` is the last
good model and the checkpoint of the last finished epoch is never overwritten by a diverged state.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from .. import _rng
from .._progress import progress_bar
from ..data import binarize_dynamic, scale_pixels
from ..optim import make_optimizer
from . import checkpoint as _ckpt

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "TrainingStopped",
    "HISTORY_COLUMNS",
    "kl_warmup_beta",
    "train",
    "evaluate",
    "binarize_batch",
    "read_history",
]

#: Columns of ``Trainer.history`` (one value per finished epoch, in this order).
HISTORY_COLUMNS = (
    "epoch",
    "step",
    "beta",
    "lr",
    "train_loss",
    "train_neg_elbo",
    "train_recon",
    "train_kl",
    "val_neg_elbo",
    "val_recon",
    "val_kl",
)



class TrainingDiverged(RuntimeError):
    """Raised when a loss or a gradient becomes NaN/inf during training.

    Attributes: ``epoch`` (1-based epoch in progress), ``step`` (0-based global step),
    ``quantity`` (what went non-finite first: ``"loss"``, ``"gradient"`` or ``"parameter"``),
    ``parameter`` (name of the parameter whose value or gradient is non-finite, or the
    largest parameter when the loss overflowed from finite parameters; None if unknown),
    ``checkpoint`` (path of the last good checkpoint, or None), ``good_epoch`` (the finished
    epochs of the last good state the trainer returned to).
    """

    def __init__(self, message: str, *, epoch: int, step: int, parameter: str | None, checkpoint: str | None,
                 quantity: str = "loss", good_epoch: int = 0):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.parameter = parameter
        self.checkpoint = checkpoint
        self.quantity = quantity
        self.good_epoch = good_epoch


class TrainingStopped(RuntimeError):
    """Raised by a plug-in (``numpyvae.speed``) that cannot go on, e.g. its worker process died:
    the trainer returns to the last finished epoch first, as after Ctrl-C."""


@dataclass
class TrainConfig:
    """Settings of a training run (all JSON-able; stored in checkpoints).

    epochs: number of passes over the training set; batch_size: examples per step;
    optimizer / lr / optimizer_kwargs: passed to ``numpyvae.optim.make_optimizer``;
    beta: final weight of the KL term; warmup_epochs: length of the linear KL warm-up from 0 to
    ``beta`` (0 disables it; may be fractional); k: Monte Carlo samples per example;
    kl: ``"closed"`` or ``"mc"``; binarize: dynamic binarisation of every minibatch (x ~
    Bernoulli(pixel intensity)) with the validation set binarised once with a fixed seed;
    seed: seed of the trainer's generators; progress: show a tqdm bar; val_batch_size: batch
    size of the (noise-seeded) validation evaluation; val_k: Monte Carlo samples used there.
    """

    epochs: int = 10
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    beta: float = 1.0
    warmup_epochs: float = 0.0
    k: int = 1
    kl: str = "closed"
    binarize: bool = False
    seed: int = 0
    progress: bool = True
    val_batch_size: int = 1000
    val_k: int = 1
    lr_schedule: str | None = None      # a name in presets.LR_SCHEDULES (lr per epoch), or None

    def __post_init__(self) -> None:
        def _pos_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")

        for name in ("batch_size", "k", "val_batch_size", "val_k"):
            _pos_int(name)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, np.integer)) or self.epochs < 0:
            raise ValueError(f"epochs: expected a non-negative integer, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a positive finite number, got {self.lr!r}")
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta: expected a non-negative finite number, got {self.beta!r}")
        if not (isinstance(self.warmup_epochs, (int, float)) and math.isfinite(self.warmup_epochs)
                and self.warmup_epochs >= 0):
            raise ValueError(f"warmup_epochs: expected a non-negative number, got {self.warmup_epochs!r}")
        if self.kl not in ("closed", "mc"):
            raise ValueError(f"kl: expected 'closed' or 'mc', got {self.kl!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {self.seed!r}")
        self.epochs = int(self.epochs)
        self.k, self.batch_size = int(self.k), int(self.batch_size)
        self.seed = int(self.seed)
        self.lr = float(self.lr)
        self.beta = float(self.beta)
        self.warmup_epochs = float(self.warmup_epochs)
        self.optimizer_kwargs = dict(self.optimizer_kwargs or {})
        if self.lr_schedule is not None:
            from .presets import LR_SCHEDULES
            if self.lr_schedule not in LR_SCHEDULES:
                raise ValueError(f"lr_schedule: expected one of {sorted(LR_SCHEDULES)} or None, "
                                 f"got {self.lr_schedule!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build a config from ``to_dict()`` output (unknown keys are rejected)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"train config: unknown keys {unknown}")
        return cls(**dict(d))


def kl_warmup_beta(step: int, steps_per_epoch: int, warmup_epochs: float, beta: float) -> float:
    """KL weight used at global step ``step`` (0-based) under a linear warm-up.

    The training objective is the negative beta-weighted ELBO, ``-E_q log p(x|z) + beta_t KL``;
    during warm-up ``beta_t`` grows linearly with the step count from 0 (at step 0) to ``beta``
    (reached after ``warmup_epochs * steps_per_epoch`` steps) and stays there afterwards.
    ``warmup_epochs == 0`` means no warm-up (``beta`` from the first step).

    Derivation: derivations/03_elbo.md, eq. (3.8)
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch: expected a positive integer, got {steps_per_epoch!r}")
    if step < 0:
        raise ValueError(f"step: expected a non-negative integer, got {step!r}")
    if warmup_epochs <= 0:
        return float(beta)
    total = warmup_epochs * steps_per_epoch
    return float(beta) * min(1.0, step / total)


def binarize_batch(x: np.ndarray, rng: np.random.Generator, dtype: Any = None) -> np.ndarray:
    """Draw binary pixels x_b ~ Bernoulli(x) elementwise; x: (B, D) in [0, 1] -> (B, D) of 0/1.

    Delegates to ``numpyvae.data.binarize_dynamic`` (one uniform draw per pixel from
    ``rng``, so the generator's consumption per batch is fixed and part of the reproducible
    state); the result is cast to ``dtype`` (default: x's dtype).
    """
    xb = binarize_dynamic(x, rng)
    return xb if dtype is None else xb.astype(dtype, copy=False)


def _seed_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    # the same named streams the model draws its weights and noise from (numpyvae._rng)
    return _rng.streams(seed)


def _check_data(name: str, x: Any, x_dim: int | None) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array (N, D), got {type(x).__name__}")
    if not (np.issubdtype(x.dtype, np.floating) or x.dtype in (np.bool_, np.uint8)):
        raise TypeError(f"{name}: expected floats, bool (binary pixels) or uint8 (grey levels 0..255), "
                        f"got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name}: expected shape (N, D), got {x.shape}")
    if x_dim is not None and x.shape[1] != x_dim:
        raise ValueError(f"{name}: expected D = {x_dim} columns (the model's x_dim), got {x.shape[1]}")
    return x


def _as_float(x: np.ndarray) -> np.ndarray:
    """Stored rows as numbers the model reads: uint8 grey levels divided by 255 (as
    ``data.scale_pixels``), bool as 0/1 in float32, floats unchanged.

    The Trainer converts one minibatch at a time, so a data set kept as uint8 or bool takes a
    quarter of the memory of its float32 copy (MNIST's training images: 47 MB, not 188 MB).
    """
    if x.dtype == np.uint8:
        return scale_pixels(x)
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    return x


def evaluate(vae: Any, x: np.ndarray, *, seed: int = 0, batch_size: int = 1000, k: int = 1, kl: str = "closed",
             binarize: bool = False, y: np.ndarray | None = None) -> dict[str, float]:
    """Negative ELBO (beta = 1) of ``vae`` on ``x`` with its parts, averaged over examples.

    Any model of the contract (module docstring); y: the labels (N,) of a conditional model.
    A model's ``val_extras`` are added to the result by name.

    x: (N, D) of floats, bool (0/1) or uint8 (grey levels, divided by 255). The
    reparameterisation noise comes from a generator seeded with ``seed`` (one draw of shape
    (k, B, Z) per batch), and with ``binarize=True`` the data are binarised once
    with another generator derived from the same seed, so the result is a deterministic
    function of (parameters, x, seed). Returns ``{"neg_elbo", "recon", "kl", "n"}`` where
    ``recon`` is the reconstruction cost ``-E_q log p(x|z)`` (nats, >= 0 for Bernoulli) and
    ``neg_elbo = recon + kl``.
    """
    x = _check_data("x", x, None)
    y = _check_labels(vae, "y", y, x)
    streams = _seed_streams(seed)
    if binarize:
        x = binarize_batch(_as_float(x), np.random.default_rng(streams["val_binarize"]))
    return _evaluate_fixed(vae, x, y, np.random.default_rng(streams["val_eps"]), batch_size, k, kl)


def _model_dtype(vae: Any) -> np.dtype:
    return np.asarray(vae.flat_params).dtype


def _options(model: Any, **values: Any) -> dict[str, Any]:
    """The keyword arguments of ``model.forward`` among ``values`` (its ``train_options``)."""
    return {name: values[name] for name in getattr(model, "train_options", ()) if name in values}


def _check_labels(model: Any, name: str, y: Any, x: np.ndarray | None) -> np.ndarray | None:
    """Labels (N,) as int64 for a model that needs them, None for one that does not."""
    needs = bool(getattr(model, "needs_labels", False))
    if y is None:
        if needs and x is not None:
            raise ValueError(f"{name}: this model is conditional and needs the labels of its data, got none")
        return None
    if not needs:
        raise ValueError(f"{name}: labels are for a conditional model; {type(model).__name__} takes none")
    y = np.asarray(y)
    if x is None or y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: expected integer labels of shape ({None if x is None else x.shape[0]},), "
                         f"got {y.dtype} {y.shape}")
    return y.astype(np.int64, copy=False)


def _evaluate_fixed(vae: Any, x: np.ndarray, y: np.ndarray | None, rng: np.random.Generator, batch_size: int,
                    k: int, kl: str) -> dict[str, float]:
    n = x.shape[0]
    if n == 0:
        return {"neg_elbo": float("nan"), "recon": float("nan"), "kl": float("nan"), "n": 0}
    dtype = _model_dtype(vae)
    stochastic = getattr(vae, "stochastic", True)
    s_elbo = s_recon = s_kl = 0.0
    kept = []
    for start in range(0, n, batch_size):
        xb = np.asarray(_as_float(x[start:start + batch_size]), dtype=dtype)
        b = xb.shape[0]
        given = _options(vae, k=k, beta=1.0, kl=kl)
        if stochastic:      # the validation noise, drawn here so that it never touches vae.rng
            given["eps"] = rng.standard_normal((k, b, vae.z_dim)).astype(dtype, copy=False)
        if y is not None:
            given["y"] = y[start:start + batch_size]
        t = vae.forward(xb, **given)
        s_elbo += float(t.elbo) * b
        s_recon += float(t.recon) * b
        s_kl += float(t.kl) * b
        if hasattr(vae, "val_extras"):
            kept.append(t)
    out = {"neg_elbo": -s_elbo / n, "recon": s_recon / n, "kl": s_kl / n, "n": n}
    if kept:
        out.update(vae.val_extras(kept))
    return out


def _cell(v: Any) -> str:
    return str(v) if isinstance(v, (int, np.integer)) else repr(float(v))


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_history(path: str | os.PathLike) -> dict[str, list[Any]]:
    """The columns of a ``history.csv`` (header, then one row per finished epoch)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{os.fspath(path)}: empty history file (expected a header line)")
    header, body = rows[0], rows[1:]
    if any(len(r) != len(header) for r in body):
        raise ValueError(f"{os.fspath(path)}: a row does not have the {len(header)} columns of the header")
    return {c: [_number(r[i]) for r in body] for i, c in enumerate(header)}


class Trainer:
    """Train a model of the contract (module docstring) on ``x_train``; track ``x_val``.

    Construction: ``Trainer(model, x_train, x_val=None, config=TrainConfig(), y_train=None,
    y_val=None, checkpoint_path=None, optimizer=None, history_path=None, speed=None)``; y_train,
    y_val: labels (N,), (M,) for a conditional model; x_train: (N, D), x_val: (M, D) or None, each of
    floats, bool (binary pixels) or uint8 (grey levels 0..255, divided by 255 one minibatch at a
    time, so MNIST kept as uint8 takes 47 MB instead of 188).
    ``speed``: None (the plain step on the calling thread, the BLAS as it is set) or a
    ``numpyvae.speed.Speed`` (thread count, minibatch split, blocked Adam): the same steps to
    float rounding, faster. When
    ``checkpoint_path`` is given a checkpoint is written when ``fit`` starts from a state not yet
    on disk and after every epoch: parameters, optimizer state, generators and counters, the same
    size at every epoch; a stopped ``fit`` reads the last one back.
    ``history_path``: a CSV file that gets one row per finished epoch, appended just before
    that epoch's checkpoint (a resume drops rows its checkpoint does not reach). ``fit()`` runs up to
    ``config.epochs`` (or a given total) and returns ``history`` (dict column -> list, see
    ``HISTORY_COLUMNS``). ``Trainer.resume(path, x_train, x_val)`` continues a saved run
    exactly. ``on_epoch_end(trainer, row)`` callbacks may be passed to ``fit``.
    """

    def __init__(self, vae: Any, x_train: np.ndarray, x_val: np.ndarray | None = None,
                 config: TrainConfig | None = None, *, y_train: np.ndarray | None = None,
                 y_val: np.ndarray | None = None, checkpoint_path: str | os.PathLike | None = None,
                 optimizer: Any = None, extra: Mapping[str, Any] | None = None,
                 history_path: str | os.PathLike | None = None, speed: Any = None):
        self.vae = vae
        self.speed = speed
        self._session: Any = None            # the speed layer's split step during fit
        self.config = config if config is not None else TrainConfig()
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(self.config).__name__}")
        x_dim = int(vae.config["x_dim"]) if "x_dim" in vae.config else None
        self.x_train = _check_data("x_train", x_train, x_dim)
        if self.x_train.shape[0] == 0:
            raise ValueError("x_train: expected at least one example, got 0")
        self.x_val = None if x_val is None else _check_data("x_val", x_val, x_dim)
        self.y_train = _check_labels(vae, "y_train", y_train, self.x_train)
        self.y_val = _check_labels(vae, "y_val", y_val, self.x_val)
        self._check_options()
        self.checkpoint_path = None if checkpoint_path is None else os.fspath(checkpoint_path)
        self.history_path = None if history_path is None else os.fspath(history_path)
        self.extra = dict(extra or {})
        if optimizer is None:
            optimizer = make_optimizer(self.config.optimizer, self.config.lr, **self.config.optimizer_kwargs)
        self.optimizer = optimizer if speed is None else speed.optimizer(optimizer)
        streams = _seed_streams(self.config.seed)
        self.rngs: dict[str, np.random.Generator] = {
            "batch": np.random.default_rng(streams["batch"]),
            "binarize": np.random.default_rng(streams["binarize"]),
        }
        self._val_x = self._prepare_val()
        self.epoch = 0  # finished epochs
        self.step = 0  # optimizer steps taken
        self.history: dict[str, list[float]] = {c: [] for c in self.columns}
        self.epoch_times: list[float] = []
        self.last_checkpoint: str | None = None
        self._good: dict[str, Any] | None = None  # state at the end of the last finished epoch
        self._updates = 0       # optimizer updates so far: which state the parameters hold
        self._saved_updates: int | None = None      # _updates when last_checkpoint was written

    # -- bookkeeping --------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The model being trained (also ``vae``, its older name)."""
        return self.vae

    @property
    def columns(self) -> tuple[str, ...]:
        """The history's columns: ``HISTORY_COLUMNS`` and the model's ``val_<VAL_COLUMNS>``."""
        return HISTORY_COLUMNS + tuple(f"val_{c}" for c in getattr(self.vae, "VAL_COLUMNS", ()))

    def _check_options(self) -> None:
        """Refuse a config that sets a training option the model does not take."""
        takes = set(getattr(self.vae, "train_options", ()))
        default = TrainConfig()
        for name in ("k", "beta", "kl", "warmup_epochs"):
            opt = "beta" if name == "warmup_epochs" else name
            if opt not in takes and getattr(self.config, name) != getattr(default, name):
                raise ValueError(f"config.{name}: {type(self.vae).__name__} takes no {opt!r} option "
                                 f"(leave it at {getattr(default, name)!r})")

    @property
    def steps_per_epoch(self) -> int:
        """Number of optimizer steps per epoch (the last minibatch may be smaller)."""
        return -(-self.x_train.shape[0] // self.config.batch_size)

    @property
    def val_data(self) -> np.ndarray | None:
        """The validation data as evaluated: x_val, binarised once with a seeded draw when
        ``config.binarize`` is set; None without validation data."""
        return self._val_x

    def beta_at(self, step: int) -> float:
        """KL weight at global step ``step`` (see ``kl_warmup_beta``)."""
        return kl_warmup_beta(step, self.steps_per_epoch, self.config.warmup_epochs, self.config.beta)

    def _prepare_val(self) -> np.ndarray | None:
        if self.x_val is None or self.x_val.shape[0] == 0:
            return None
        if self.config.binarize:
            rng = np.random.default_rng(_seed_streams(self.config.seed)["val_binarize"])
            return binarize_batch(_as_float(self.x_val), rng)
        return _as_float(self.x_val)

    def trainer_state(self) -> dict[str, Any]:
        """The JSON-able trainer state stored in checkpoints (see ``numpyvae.training.checkpoint.save``)."""
        return {
            "train_config": self.config.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": {"name": self.config.optimizer, "lr": self.config.lr,
                          "kwargs": dict(self.config.optimizer_kwargs)},
            "rngs": dict(self.rngs),
            "extra": dict(self.extra),
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> str:
        """Write the current state atomically to ``path`` (default: ``checkpoint_path``)."""
        path = self.checkpoint_path if path is None else os.fspath(path)
        if path is None:
            raise ValueError("path: no checkpoint path given and the trainer has none")
        _ckpt.save(path, self.vae, self.optimizer, self.trainer_state())
        self.last_checkpoint = path
        self._saved_updates = self._updates
        if path == self.checkpoint_path:
            self._saved_epoch = self.epoch
        return path

    def _append_history(self, row: Mapping[str, Any]) -> None:
        """One row more in ``history_path`` (the header first when the file is new)."""
        if not os.path.exists(self.history_path):
            self._start_history()
        with open(self.history_path, "a", encoding="utf-8", newline="") as fh:
            fh.write(",".join(_cell(row[c]) for c in self.columns) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _start_history(self) -> None:
        """``history_path`` with the header line only (a run that has finished no epoch)."""
        head = (",".join(self.columns) + "\n").encode("utf-8")
        _ckpt.atomic_write(self.history_path, lambda fh: fh.write(head))

    def _read_history(self, path: str, epochs: int) -> dict[str, list[Any]]:
        """The first ``epochs`` rows of the history file; rows past the checkpoint (an epoch whose
        checkpoint was never written) are cut from the file."""
        if not os.path.exists(path):
            if epochs:
                raise ValueError(f"{path}: the history of the run's {epochs} epoch(s) is missing")
            return {c: [] for c in self.columns}
        have = read_history(path)
        if list(have) != list(self.columns):
            raise ValueError(f"{path}: columns {list(have)} are not this run's {list(self.columns)}")
        n = len(have["epoch"])
        if n < epochs:
            raise ValueError(f"{path}: {n} row(s) for the checkpoint's {epochs} epochs")
        if n > epochs:
            with open(path, encoding="utf-8") as fh:
                lines = fh.readlines()[:1 + epochs]
            _ckpt.atomic_write(path, lambda out: out.write("".join(lines).encode("utf-8")))
        return {c: v[:epochs] for c, v in have.items()}

    @classmethod
    def resume(cls, path: str | os.PathLike | Any, x_train: np.ndarray, x_val: np.ndarray | None = None, *,
               y_train: np.ndarray | None = None, y_val: np.ndarray | None = None,
               checkpoint_path: str | os.PathLike | None = None, epochs: int | None = None,
               progress: bool | None = None, lr: float | None = None,
               extra: Mapping[str, Any] | None = None, history_path: str | os.PathLike | None = None,
               speed: Any = None) -> Trainer:
        """Rebuild model, optimizer, generators, counters and history from checkpoint ``path``
        (a path, or a ``checkpoint.Checkpoint`` already read: the file is read once) and the
        history file ``history_path`` (none: the history starts empty).

        The returned trainer continues the run exactly (``fit()`` then matches an uninterrupted
        run with the same seed). ``epochs`` overrides the total epoch count; ``lr`` the
        optimizer's learning rate from here on (recorded in the config and, per epoch, in the
        history's ``lr`` column); ``checkpoint_path`` defaults to ``path``; ``progress``
        overrides the progress-bar setting; ``extra`` replaces the checkpoint's free-form dict;
        ``speed`` as in the constructor (not part of the run: it may change on
        resume).
        """
        ck = path if isinstance(path, _ckpt.Checkpoint) else _ckpt.load(path)
        path = ck.path
        cfg_d = dict(ck.train_config)
        if epochs is not None:
            cfg_d["epochs"] = epochs
        if progress is not None:
            cfg_d["progress"] = progress
        if lr is not None:
            cfg_d["lr"] = lr
        try:
            config = TrainConfig.from_dict(cfg_d)
        except (TypeError, ValueError) as exc:
            raise _ckpt.CheckpointError(f"{ck.path}: invalid train config: {exc}") from exc
        vae = ck.build_model()
        opt = ck.build_optimizer()
        if lr is not None:
            opt.lr = config.lr
        tr = cls(vae, x_train, x_val, config, y_train=y_train, y_val=y_val,
                 checkpoint_path=os.fspath(path) if checkpoint_path is None else checkpoint_path,
                 optimizer=opt, extra=ck.extra if extra is None else extra, speed=speed,
                 history_path=history_path)
        for name in tr.rngs:
            if name not in ck.rng_states:
                raise _ckpt.CheckpointError(f"{ck.path}: rng state {name!r} is missing")
            _ckpt.set_rng_state(tr.rngs[name], ck.rng_states[name])
        tr.epoch = ck.epoch
        tr.step = ck.step
        if tr.history_path is not None:
            tr.history = tr._read_history(tr.history_path, ck.epoch)
        tr.last_checkpoint = os.fspath(path)
        tr._saved_updates = tr._updates     # the file holds the state just loaded
        return tr

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate_val(self) -> dict[str, float]:
        """Validation negative ELBO and parts with the seeded validation noise (NaN if no data)."""
        if self._val_x is None:
            return {"neg_elbo": float("nan"), "recon": float("nan"), "kl": float("nan"), "n": 0}
        rng = np.random.default_rng(_seed_streams(self.config.seed)["val_eps"])
        return _evaluate_fixed(self.vae, self._val_x, self.y_val, rng, self.config.val_batch_size,
                               self.config.val_k, self.config.kl)

    # -- training -----------------------------------------------------------------------------
    def _diverged(self, what: str, parameter: str | None, quantity: str) -> TrainingDiverged:
        where = f"at step {self.step} (epoch {self.epoch + 1})"
        good = "the untrained model" if self.epoch == 0 else f"the model after epoch {self.epoch}"
        if self.last_checkpoint is not None:
            tail = f"the last good state is {good}, kept at {self.last_checkpoint}"
        else:
            tail = f"the trainer is back at {good} (no checkpoint_path)"
        return TrainingDiverged(f"training diverged {where}: {what}; {tail}", epoch=self.epoch + 1,
                                step=self.step, parameter=parameter, checkpoint=self.last_checkpoint,
                                quantity=quantity, good_epoch=self.epoch)

    def _nonfinite_names(self, arrays: Mapping[str, np.ndarray]) -> list[str]:
        return [name for name, a in arrays.items() if not np.all(np.isfinite(a))]

    def _loss_diagnosis(self, t: Any) -> tuple[str, str | None, str]:
        """(message, parameter, quantity) for a non-finite loss: which part, from what."""
        bad = self._nonfinite_names(self.vae.params)
        if bad:
            more = f" (also: {', '.join(bad[1:])})" if len(bad) > 1 else ""
            return (f"parameter {bad[0]!r} is non-finite{more}, so the loss is {float(t.loss)}", bad[0], "parameter")
        parts = [name for name in ("mu", "logvar", "z", "recon_per_example", "kl_per_example")
                 if getattr(t, name, None) is not None and not np.all(np.isfinite(getattr(t, name)))]
        labels = {"mu": "the encoder mean mu", "logvar": "the encoder log-variance logvar",
                  "z": "the sample z", "recon_per_example": "the reconstruction cost",
                  "kl_per_example": "the KL term"}
        first = labels[parts[0]] if parts else "the loss"
        if parts and parts[0] == "z":
            first += f" (sigma = exp(logvar / 2) overflowed: logvar up to {float(np.max(t.logvar)):.3g})"
        big = max(self.vae.params, key=lambda n: float(np.max(np.abs(self.vae.params[n]), initial=0.0)))
        size = float(np.max(np.abs(self.vae.params[big]), initial=0.0))
        return (f"the loss is {float(t.loss)}: {first} went non-finite"
                + (f" (then: {', '.join(labels[p] for p in parts[1:])})" if len(parts) > 1 else "")
                + f" although every parameter is finite (largest: {big!r}, |value| up to {size:.3g}; "
                  "the learning rate is probably too large)", big, "loss")

    def _snapshot(self) -> None:
        """Keep the current (good) state: parameters, optimizer, generators, counters.

        With a ``checkpoint_path`` the parameters and the optimizer's state are not copied: until
        the next update they are the live arrays, and from then on the checkpoint that ``_fit``
        writes right after this snapshot holds them (a second copy in memory is 7.5 MiB for
        784-400-20 with Adam, 3% of a run's memory). Without one, they are copied into the last
        snapshot's arrays: no moment holds two snapshots, and no epoch allocates new ones."""
        last, self._good = self._good, None
        params = opt = None
        if self.checkpoint_path is None:
            fp = self.vae.flat_params
            params = None if last is None else last["params"]
            if params is None or params.shape != fp.shape or params.dtype != fp.dtype:
                params = fp.copy()
            else:
                np.copyto(params, fp)
            opt = self.optimizer.state_dict(into=None if last is None else last["opt"])
        self._good = {
            "params": params,
            "opt": opt,
            "updates": self._updates,
            "rngs": {name: g.bit_generator.state for name, g in self.rngs.items()},
            "vae_rng": self.vae.rng.bit_generator.state,
            "epoch": self.epoch,
            "step": self.step,
            "rows": len(self.history["epoch"]),
        }

    def restore_last_good(self) -> bool:
        """Return to the state at the end of the last finished epoch (False if none was kept).

        The parameters and the optimizer's state come from the snapshot's copies, or, with a
        ``checkpoint_path``, from the live arrays if no update has touched them since, else from
        the checkpoint written at that epoch's end (read back and checked to be that state)."""
        g = self._good
        if g is None:
            return False
        if g["params"] is not None:
            self.vae.flat_params[...] = g["params"]
            self.optimizer.load_state_dict({k: v.copy() for k, v in g["opt"].items()})
        elif self._updates != g["updates"]:
            if self._saved_updates != g["updates"]:
                raise RuntimeError(f"cannot return to the end of epoch {g['epoch']}: no checkpoint of "
                                   "it was written")
            ck = _ckpt.load(self.last_checkpoint)
            if (ck.epoch, ck.step) != (g["epoch"], g["step"]):
                raise _ckpt.CheckpointError(
                    f"{ck.path}: holds epoch {ck.epoch} (step {ck.step}), not the last good state "
                    f"(epoch {g['epoch']}, step {g['step']}); it was changed during training")
            self.vae.load_state_dict(ck.params)
            self.optimizer.load_state_dict(ck.opt_state)     # written by this trainer: never None
        self._updates = g["updates"]
        for name, state in g["rngs"].items():
            self.rngs[name].bit_generator.state = state
        self.vae.rng.bit_generator.state = g["vae_rng"]
        self.epoch, self.step = g["epoch"], g["step"]
        for column in self.history.values():      # rows of epochs after the good state go
            del column[g["rows"]:]
        return True

    def train_step(self, xb: np.ndarray, yb: np.ndarray | None = None) -> Any:
        """One optimizer step on the minibatch xb: (B, D) (labels yb (B,) for a conditional
        model); returns the model's terms.

        Raises ``TrainingDiverged`` (before touching the parameters) if the loss or any gradient
        is not finite.
        """
        beta = self.beta_at(self.step)
        # overflow warnings would only precede the TrainingDiverged raised below
        with np.errstate(over="ignore", invalid="ignore"):
            return self._step(xb, yb, beta)

    def _minibatch(self, idx: np.ndarray, dtype: Any) -> np.ndarray:
        """The training rows ``idx`` as the model's floats, binarised if the config says so."""
        xb = _as_float(self.x_train[idx])
        if self.config.binarize:
            return binarize_batch(xb, self.rngs["binarize"], dtype)
        return np.asarray(xb, dtype=dtype)

    def _minibatches(self, order: np.ndarray, dtype: Any) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(xb, yb) for each minibatch of the epoch's ``order``; the labels travel with their rows."""
        for start in range(0, order.size, self.config.batch_size):
            idx = order[start:start + self.config.batch_size]
            yield self._minibatch(idx, dtype), (None if self.y_train is None else self.y_train[idx])

    def _step(self, xb: np.ndarray, yb: np.ndarray | None, beta: float,
              prepare: Callable[[], None] | None = None) -> Any:
        """forward, backward, checks, optimizer step. A speed session (a split step) does the
        forward and backward of a minibatch without labels; ``prepare`` makes the next
        minibatch while it waits for its other part."""
        cfg, session = self.config, self._session
        if session is not None and yb is None:
            t = session.forward_backward(xb, k=cfg.k, beta=beta, kl=cfg.kl, prepare=prepare)
        else:
            session = None
            given = _options(self.vae, k=cfg.k, beta=beta, kl=cfg.kl)
            t = self.vae.forward(xb, **given) if yb is None else self.vae.forward(xb, y=yb, **given)
        if not math.isfinite(float(t.loss)):
            raise self._diverged(*self._loss_diagnosis(t))
        if session is None:
            self.vae.backward()
        g = self.vae.flat_grads
        # g . g is one BLAS pass and non-finite whenever an entry is; only then look closer
        # (it can also overflow with every entry finite: then the exact check clears it).
        # A process split has summed it already, each process over its half of g.
        sq = session.grad_sq if session is not None else None
        if sq is None:
            sq = float(np.dot(g, g))
        if not math.isfinite(sq) and not np.all(np.isfinite(g)):
            bad = self._nonfinite_names(self.vae.grads)
            name = bad[0] if bad else "<unknown>"
            raise self._diverged(f"the gradient of parameter {name!r} is non-finite (the loss was {float(t.loss):.4g})"
                                 + (f" (also: {', '.join(bad[1:])})" if len(bad) > 1 else ""), name, "gradient")
        self._updates += 1      # from here on the parameters are not the snapshot's
        if session is None or not session.update(self.optimizer):
            self.optimizer.step(self.vae.flat_params, self.vae.flat_grads)
        self.step += 1
        return t

    def fit(self, epochs: int | None = None, *,
            callbacks: Sequence[Callable[[Trainer, dict[str, float]], None]] = (),
            stop_after: float | None = None) -> dict[str, list[float]]:
        """Train until ``epochs`` epochs in total are finished (default ``config.epochs``), or,
        with ``stop_after`` (seconds), until the first epoch that ends after that much time in
        this call: a time budget that always stops on a finished, checkpointed epoch.

        Each epoch: shuffle with the ``"batch"`` generator, optionally binarise each minibatch
        with the ``"binarize"`` generator, step the optimizer on ``vae.flat_params`` with
        ``vae.flat_grads``, then evaluate the validation set, append a history row, checkpoint
        (if a path is set) and call the callbacks. Returns ``history``.

        On ``TrainingDiverged`` or ``KeyboardInterrupt`` the trainer first returns to the state
        at the end of the last finished epoch (``restore_last_good``), then re-raises.
        """
        if stop_after is not None and not (isinstance(stop_after, (int, float)) and stop_after > 0):
            raise ValueError(f"stop_after: expected a positive number of seconds or None, got {stop_after!r}")
        if epochs is not None and int(epochs) < 0:      # before anything is written
            raise ValueError(f"epochs: expected a non-negative integer, got {epochs!r}")
        self._good = None    # the last snapshot's copies go before a split forks (no copy in its child)
        if self.checkpoint_path is not None and self._saved_updates != self._updates:
            self.save_checkpoint()  # the state fit starts from is on disk: the snapshot's copy of it
        try:
            with self._speed_session():
                return self._fit(epochs, callbacks, stop_after)
        except (TrainingDiverged, KeyboardInterrupt, TrainingStopped):
            self.restore_last_good()
            if self.checkpoint_path is not None and getattr(self, "_saved_epoch", None) != self.epoch:
                self.save_checkpoint()      # stopped between the epoch's snapshot and its checkpoint
            raise

    @contextlib.contextmanager
    def _speed_session(self) -> Iterator[None]:
        if self.speed is None:
            yield
            return
        with self.speed.session(self) as session:
            self._session = session
            try:
                yield
            finally:
                self._session = None

    def _fit(self, epochs: int | None, callbacks: Sequence[Callable[[Trainer, dict[str, float]], None]],
             stop_after: float | None = None) -> dict[str, list[float]]:
        t_begin = time.perf_counter()
        total = self.config.epochs if epochs is None else int(epochs)     # checked in fit
        if self.history_path is not None and self.epoch == 0:
            self._start_history()
        self._snapshot()
        dtype = _model_dtype(self.vae)
        cfg = self.config
        n = self.x_train.shape[0]
        while self.epoch < total:
            t0 = time.perf_counter()
            if cfg.lr_schedule is not None:  # a paper's schedule (training/presets.py): lr per epoch
                from .presets import lr_at_epoch
                self.optimizer.lr = lr_at_epoch(cfg.lr_schedule, cfg.lr, self.epoch)
            order = self.rngs["batch"].permutation(n)
            s_loss = s_elbo = s_recon = s_kl = 0.0
            seen = 0
            bar = _progress(self.steps_per_epoch, f"epoch {self.epoch + 1}/{total}", cfg.progress)
            try:
                batches = _Ahead(self._minibatches(order, dtype))
                for xb, yb in batches:
                    with np.errstate(over="ignore", invalid="ignore"):   # a divergence is raised below
                        t = self._step(xb, yb, self.beta_at(self.step), batches.prepare)
                    b = xb.shape[0]
                    seen += b
                    s_loss += float(t.loss) * b
                    s_elbo += float(t.elbo) * b
                    s_recon += float(t.recon) * b
                    s_kl += float(t.kl) * b
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{s_loss / seen:.2f}", refresh=False)
            finally:
                if bar is not None:
                    bar.close()
            if self._session is not None:
                self._session.wait()      # every parameter updated before anything reads them
            val = self.evaluate_val()
            self.epoch += 1
            row = {
                "epoch": int(self.epoch),
                "step": int(self.step),
                "beta": self.beta_at(max(self.step - 1, 0)),
                "lr": float(getattr(self.optimizer, "lr", cfg.lr)),   # after a schedule, the rate used
                "train_loss": s_loss / seen,
                "train_neg_elbo": -s_elbo / seen,
                "train_recon": s_recon / seen,
                "train_kl": s_kl / seen,
                "val_neg_elbo": val["neg_elbo"],
                "val_recon": val["recon"],
                "val_kl": val["kl"],
            }
            row.update({c: val[c[len("val_"):]] if c[len("val_"):] in val else float("nan")
                        for c in self.columns[len(HISTORY_COLUMNS):]})
            for c in self.columns:
                self.history[c].append(row[c])
            self.epoch_times.append(time.perf_counter() - t0)
            if self.history_path is not None:
                self._append_history(row)
            # the snapshot first, then the checkpoint: a stop between the two returns to this
            # epoch, and fit's stop path writes its checkpoint, so disk and memory agree
            self._snapshot()
            if self.checkpoint_path is not None:
                self.save_checkpoint()
            for cb in callbacks:
                cb(self, row)
            if stop_after is not None and time.perf_counter() - t_begin >= stop_after:
                break
        return self.history


class _Ahead:
    """An iterator that can make its next item early (``prepare``), when the caller has time."""

    def __init__(self, items: Iterator[Any]):
        self.items, self.next = items, []

    def __iter__(self) -> _Ahead:
        return self

    def __next__(self) -> Any:
        return self.next.pop() if self.next else next(self.items)

    def prepare(self) -> None:
        if not self.next:
            self.next.extend(self._one())

    def _one(self) -> list[Any]:
        try:
            return [next(self.items)]
        except StopIteration:
            return []


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    return progress_bar(total=total, desc=desc, leave=False, dynamic_ncols=True, unit="batch")


def train(vae: Any, x_train: np.ndarray, x_val: np.ndarray | None = None, config: TrainConfig | None = None,
          *, checkpoint_path: str | os.PathLike | None = None, **overrides: Any) -> Trainer:
    """Convenience wrapper: build a ``Trainer`` (``overrides`` update ``config`` fields), run
    ``fit()`` and return the trainer (``trainer.history``, ``trainer.vae``)."""
    cfg = config if config is not None else TrainConfig()
    if overrides:
        d = cfg.to_dict()
        d.update(overrides)
        cfg = TrainConfig.from_dict(d)
    tr = Trainer(vae, x_train, x_val, cfg, checkpoint_path=checkpoint_path)
    tr.fit()
    return tr
