"""``numpyvae evaluate --iw-k K``: the importance-sampled log p(x), with its memory said and
checked before anything is allocated, and its progress shown while it runs (K = 5000 on a
thousand images takes a minute or more).

Bookkeeping rather than mathematics: the estimator is ``theory.estimators.log_likelihood``
(derivations/08_importance_sampling.md, eq. (8.5)).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from ..theory.estimators import log_likelihood, log_likelihood_memory
from ..training import memory

__all__ = ["importance_sampled"]


def _progress_lines(say: Callable[[str], None], every: float = 10.0) -> Callable[[int, int, float], None]:
    """Off a terminal (a log file, a pipe): one line at most every ``every`` seconds, and at the end."""
    last = [-every]

    def report(done: int, total: int, seconds: float) -> None:
        if done < total and seconds - last[0] < every:
            return
        last[0] = seconds
        left = seconds / done * (total - done) if done else float("nan")
        say(f"log p(x): {done} of {total} examples, {seconds:.0f} s" + (f", about {left:.0f} s left"
                                                                         if done < total else ""))
    return report


def importance_sampled(vae, x: np.ndarray, k: int, rng: np.random.Generator, say: Callable[[str], None],
                       share: float = 0.8, progress: bool | None = None, y: np.ndarray | None = None) -> np.ndarray:
    """log p(x) per example with K importance samples; ValueError (one line) when the chunked
    computation would not fit in ``share`` of the memory this machine has available.
    ``progress``: a bar (True), lines (False), or by whether stderr is a terminal (None); ``y``: the
    labels of a conditional model (None otherwise)."""
    plan = log_likelihood_memory(vae, x.shape[0], k)
    need = memory.fmt_bytes(plan["bytes"])
    avail = memory.available_bytes()
    if avail is not None and plan["bytes"] > share * avail:
        raise ValueError(f"--iw-k {k}: the importance-sampled estimate needs about {need} of memory "
                         f"({plan['samples']} samples x {plan['examples']} examples at a time) but this machine "
                         f"has {memory.fmt_bytes(avail)} available")
    say(f"log p(x) by importance sampling: K = {k} for each of {x.shape[0]} examples, {plan['samples']} "
        f"samples x {plan['examples']} examples at a time, about {need} of memory")
    bar = sys.stderr.isatty() if progress is None else progress
    t0 = time.perf_counter()
    ll = np.asarray(log_likelihood(vae, x, k=k, rng=rng, y=y,
                                   progress=True if bar else _progress_lines(say)))
    if bar:
        say(f"log p(x): {x.shape[0]} examples in {time.perf_counter() - t0:.0f} s")
    return ll
