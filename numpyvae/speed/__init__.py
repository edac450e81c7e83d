"""The speed layer: what makes ``numpyvae train`` faster, kept out of the loop a student reads.

``Trainer(model, x).fit()`` runs the plain step on the calling thread: no process, no thread
pool, no allocator setting. The command line builds a ``Speed`` and hands it to the trainer
(``Trainer(..., speed=Speed(threads=2))``); the same steps then run faster where the machine
allows, and give the same numbers up to the order of floating-point additions:

- ``threads``: how many threads a run uses (``--threads N|auto``) and the BLAS setting;
- ``split``: each minibatch split in parts trained at once, the second in a child process
  where ``fork`` exists (else threads, in one process), with ``Governor`` running whole steps
  while they measure faster;
- ``heap``: glibc's heap setting that keeps a step's temporaries mapped;
- ``adam``: Adam's update in cache-sized blocks (``BlockedAdam``, equal to ``optim.Adam``);
- ``fused``: with the optional ``fast`` extra (numba), the plain VAE's elementwise work and
  Adam's update as fused one-pass kernels (``fused.py``; on by default when numba is
  installed, ``Speed(fused=False)`` turns it off; the same numbers up to rounding).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""
from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..optim import Adam
from .adam import BlockedAdam
from .heap import keep_freed_heap
from .split import Governor, WorkerLost, make_split
from .threads import blas_threads

__all__ = ["Speed", "Session", "WorkerLost"]


class Speed:
    """How a trainer's steps run: ``threads`` (1: one thread; n >= 2: the minibatch split in n
    parts, each on a one-thread BLAS), ``adapt`` (a ``Governor`` runs whole steps while they
    measure faster), ``heap`` (set glibc's heap once, ``heap.keep_freed_heap``), ``fused`` (the
    fused kernels: None = on when numba is installed), ``split`` (False: no split, whole steps
    on an n-thread BLAS; what the benchmarks weigh the split against)."""

    def __init__(self, threads: int = 1, adapt: bool = False, heap: bool = True,
                 fused: bool | None = None, split: bool = True):
        if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
            raise ValueError(f"threads: expected a positive integer, got {threads!r}")
        if fused not in (None, True, False):
            raise ValueError(f"fused: expected True, False or None (on when numba is installed), got {fused!r}")
        if split not in (True, False):
            raise ValueError(f"split: expected True or False, got {split!r}")
        self.threads, self.adapt, self.heap, self.split = threads, bool(adapt), bool(heap), split
        self._fused_asked = fused
        self.governor: Governor | None = None      # kept across fits, made on the first split

    @property
    def fused(self) -> bool:
        """Whether the fused kernels run: asked for (or numba installed, when not said) and
        compiled. Asked for without numba, or failing to compile: one message, then False."""
        asked = self._fused_asked
        if asked is None:
            asked = importlib.util.find_spec("numba") is not None
        if not asked:
            return False
        from . import fused
        return fused.available()

    def optimizer(self, opt: Any) -> Any:
        """The optimizer the steps use: for Adam its fused form (with the ``fast`` extra) or its
        blocked form (same state), else ``opt``."""
        if type(opt) is not Adam:
            return opt
        if self.fused:
            from .fused import FusedAdam
            return FusedAdam.like(opt)
        return BlockedAdam.like(opt)

    @contextlib.contextmanager
    def session(self, trainer: Any) -> Iterator[Session | None]:
        """For the duration of ``trainer.fit``: the BLAS setting and, with n >= 2 threads and a
        model that splits (a VAE without labels), the split step. Yields a ``Session`` or None."""
        if self.heap:
            keep_freed_heap()
        fused = None
        if self.fused:
            from . import fused
            if not fused.attach(trainer.model):   # a model the fused step does not take
                fused = None
        try:
            with self._session(trainer) as session:
                yield session
        finally:
            if fused is not None:
                fused.detach(trainer.model)

    @contextlib.contextmanager
    def _session(self, trainer: Any) -> Iterator[Session | None]:
        model, n = trainer.model, self.threads
        splits = self.split and n >= 2 and hasattr(model, "_named_linears") and trainer.y_train is None
        if not splits:
            with blas_threads(n):
                yield None
            return
        opt = trainer.optimizer
        old = model.flat_params
        # the one-thread BLAS first: a child process inherits the setting
        with blas_threads(1), make_split(model, n, trainer.config.batch_size, trainer.config.k) as split:
            if model.flat_params is not old and hasattr(opt, "rebind"):
                opt.rebind(model.flat_params)        # the split moved the parameters (same values)
            pooled = isinstance(opt, BlockedAdam) and split.pool is not None
            if pooled:
                opt.pool, opt.workers = split.pool, n
            if self.adapt:
                self.governor = self.governor or Governor()
            try:
                yield Session(split, self.governor if self.adapt else None)
            finally:
                if pooled:
                    opt.pool, opt.workers = None, 1


class Session:
    """One fit's split step: ``forward_backward`` (the trainer's forward and backward of a
    minibatch without labels), ``grad_sq``, ``update`` and ``wait``."""

    def __init__(self, split: Any, governor: Governor | None):
        self.split, self.governor = split, governor
        self.grad_sq: float | None = None
        self._split_now = True

    def forward_backward(self, xb: Any, *, k: int, beta: float, kl: str,
                         prepare: Callable[[], None] | None = None) -> Any:
        """The terms of ``model.forward(xb, ...)`` with ``model.backward()`` done; ``prepare``
        (the trainer's next minibatch) runs while a child process works."""
        gov, split = self.governor, self.split
        if gov is None:
            t = split.step(xb, k=k, beta=beta, kl=kl, idle=prepare)
            self.grad_sq, self._split_now = split.grad_sq, True
            return t
        self._split_now = gov.split_next()
        spent = 0.0

        def timed() -> None:        # the governor compares steps without the minibatch making
            nonlocal spent
            t0 = time.perf_counter()
            prepare()
            spent = time.perf_counter() - t0
        t0 = time.perf_counter()
        if self._split_now:
            t = split.step(xb, k=k, beta=beta, kl=kl, idle=timed if prepare is not None else None)
            self.grad_sq = split.grad_sq
        else:
            split.wait()      # the split's last update may still be finishing in the child
            t = split.vae.forward(xb, k=k, beta=beta, kl=kl)
            split.vae.backward()
            self.grad_sq = None
        gov.record(self._split_now, xb.shape[0], time.perf_counter() - t0 - spent)
        return t

    def update(self, opt: Any) -> bool:
        """The optimizer step split across processes when the split can; False: not done."""
        return self._split_now and hasattr(self.split, "update") and self.split.update(opt)

    def wait(self) -> None:
        """Until every parameter is updated (before anything reads them)."""
        self.split.wait()
