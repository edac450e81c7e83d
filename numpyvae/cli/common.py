"""What the commands share: messages on stderr, the data set and its folder, the thread
choice, and the memory check that refuses a model too large for this machine.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .errors import CLIError
from .parser import GENERATED, TOY_SETS
from ..data import DATASETS, load_dataset
from ..speed import threads
from ..speed.split import fork_available, uses_processes
from ..training import memory

__all__ = ["say", "data_folder", "load_data", "fmt", "extras", "threads_choice", "check_memory", "MEMORY_SHARE"]

# share of the machine's available memory a run may plan to use
MEMORY_SHARE = 0.8


def say(msg: str) -> None:
    """One line on stderr, at once (progress and notes; stdout keeps the results)."""
    print(msg, file=sys.stderr, flush=True)


def data_folder(arg: str | None) -> str | None:
    """The data directory: ``--data-dir`` (``arg``), else ``$NUMPYVAE_DATA``, else None."""
    d = arg if arg is not None else os.environ.get("NUMPYVAE_DATA") or None
    if d is not None and not os.path.isdir(os.path.expanduser(d)):
        src = "--data-dir" if arg is not None else "$NUMPYVAE_DATA"
        raise CLIError(f"data directory not found: {d} (from {src})")
    return d


def load_data(name: str, data_dir: str | None, seed: int, binarize: str | None, *, test: bool,
              who: str = "") -> Any:
    """The data set ``name``; ``who`` names where the name came from in the error for a missing
    data directory (default ``--dataset NAME``)."""
    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r} (choose from: {', '.join(DATASETS)})")
    if data_dir is None and name != "mnist-embedded" and name not in TOY_SETS and name not in GENERATED:
        raise CLIError(f"{who or '--dataset ' + name} is read from a data directory: pass --data-dir DIR or set "
                       "NUMPYVAE_DATA (the default data set mnist-embedded ships with the package and needs none)")
    return load_dataset(name, data_dir=data_dir, seed=seed, binarize=binarize, test=test)


def fmt(x: float) -> str:
    return f"{x:.2f}"


def threads_choice(request: str | int, split: bool = False) -> tuple[int, str, dict[str, Any]]:
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


def check_memory(what: dict[str, Any], need: Callable[..., int], defaults: dict[str, Any]) -> None:
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


def extras(row: dict[str, Any]) -> str:
    """A VQ-VAE's codebook numbers of a history row, or ''."""
    if "val_perplexity" not in row:
        return ""
    return (f"  codebook {row['val_codebook']:.3f}  perplexity {row['val_perplexity']:.1f}"
            f"  codes used {row['val_codes_used']}")
