"""Will a model fit? The memory of a run estimated before anything is allocated.

``numpyvae train --z-dim 1000000000`` should answer in one line what fits on this machine,
not fail deep inside NumPy. ``run_bytes`` counts the parameters (with their gradients, the
optimizer's moments, the copy kept as the last good state and the one written to a
checkpoint) and the activations of one minibatch (forward values and their gradients, K
samples on the decoder side); ``available_bytes`` reads what the machine has free;
``largest_fitting`` finds the largest value of one option that still fits.

``keep_freed_heap`` is the one speed setting here: glibc returns the top of its heap to the
system as soon as a few hundred KB are free there, so a training step whose temporaries are
(B, 784) arrays pays page faults for the same memory on every step (measured: the tanh
backward ``dy * (1 - y * y)`` on a (128, 400) float32 array took 160 us instead of 20).
Asking glibc to keep some free heap mapped removes that cost; the Trainer does it once per
process and the CLI says so. It also fixes glibc's mmap threshold: glibc serves blocks above
it with fresh pages from the system, and raises it only as large blocks are freed, so whether
a step's (B, 784) temporaries came from the heap depended on what the process had freed before
(measured: ``bernoulli_log_prob`` on (128, 784) float32 took 870 us after nothing large was
freed, 280 us after). ``release_free_heap`` is its opposite, for the moment before the
split step forks its child (training/parallel.py).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["n_params", "run_bytes", "available_bytes", "largest_fitting", "fmt_bytes", "keep_freed_heap",
           "release_free_heap", "HEAP_PAD_ENV"]

# flat params + grads + 2 Adam moments + last-good copy + checkpoint copy, in the model dtype
_PARAM_COPIES = 6
# pre-activation, activation and its gradient per unit
_ACT_COPIES = 3


def n_params(x_dim: int, z_dim: int, hidden: Sequence[int], likelihood: str = "bernoulli") -> int:
    """Number of parameters of ``VAE(x_dim, z_dim, hidden, likelihood)`` (weights and biases)."""
    enc = [x_dim, *hidden]
    n = sum(a * b + b for a, b in zip(enc[:-1], enc[1:]))
    n += 2 * (enc[-1] * z_dim + z_dim)  # mu and logvar heads
    dec = [z_dim, *hidden[::-1]]
    n += sum(a * b + b for a, b in zip(dec[:-1], dec[1:]))
    heads = 2 if likelihood == "gaussian_learned" else 1
    n += heads * (dec[-1] * x_dim + x_dim)
    return int(n)


def run_bytes(x_dim: int, z_dim: int, hidden: Sequence[int], likelihood: str = "bernoulli", *,
              batch_size: int = 100, k: int = 1, itemsize: int = 4, eval_batch: int = 1000) -> int:
    """Rough peak memory in bytes of training this model (an overestimate by design, not a bound).

    Parameters: ``_PARAM_COPIES`` arrays of the model dtype, plus the float64 draw of the
    largest weight matrix at initialisation. Activations: the larger of a training batch
    (``batch_size`` examples, ``k`` samples) and an evaluation batch (``eval_batch``, K = 1).
    """
    hidden = list(hidden)
    p = n_params(x_dim, z_dim, hidden, likelihood)
    widths = [x_dim, *hidden, z_dim]
    largest = max(a * b for a, b in zip(widths[:-1], widths[1:]))
    heads = 2 if likelihood == "gaussian_learned" else 1

    def acts(b: int, kk: int) -> int:
        enc = b * (x_dim + sum(hidden) + 2 * z_dim)
        dec = kk * b * (3 * z_dim + sum(hidden) + heads * x_dim)
        return _ACT_COPIES * (enc + dec)

    act = max(acts(batch_size, k), acts(min(eval_batch, max(batch_size, 1)), 1))
    return int(_PARAM_COPIES * p * itemsize + 8 * largest + act * itemsize)


def available_bytes() -> int | None:
    """Memory this process could still allocate (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def largest_fitting(need: Callable[[int], int], budget: int, hi: int) -> int:
    """Largest integer v in [0, hi] with ``need(v) <= budget`` (``need`` increasing), 0 if none."""
    lo = 0
    if need(1) > budget:
        return 0
    lo, hi = 1, max(1, hi)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if need(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def fmt_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; binary units up to TiB and beyond."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def _glibc(name: str) -> Any:
    """The C library's function ``name`` on Linux, or None (another system, or not glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


#: environment variable: the heap top pad in MiB ("0" leaves glibc's default alone)
HEAP_PAD_ENV = "NUMPYVAE_HEAP_PAD_MB"
_M_TOP_PAD = -2          # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
#: blocks below this come from the heap: glibc's own ceiling for its sliding threshold (64-bit)
MMAP_THRESHOLD_MIB = 32


@functools.cache
def keep_freed_heap(mib: int = 64) -> str | None:
    """Ask glibc to keep ``mib`` MiB of freed memory at the top of its heap (``M_TOP_PAD``)
    instead of returning it to the system after every free, and to serve blocks below
    ``MMAP_THRESHOLD_MIB`` from that heap (``M_MMAP_THRESHOLD``), once per process.

    Returns a one-line description of what was set, or None where there is nothing to set
    (not glibc, or ``NUMPYVAE_HEAP_PAD_MB=0``). Pages are only kept after they were used, so
    the peak resident memory does not grow; the process just stops unmapping and re-faulting
    the same temporaries.
    """
    env = os.environ.get(HEAP_PAD_ENV)
    if env is not None:
        try:
            mib = int(env)
        except ValueError:
            mib = -1
        if not 0 <= mib <= 2047:     # mallopt takes a C int of bytes
            raise ValueError(f"{HEAP_PAD_ENV}: expected a whole number of MiB from 0 to 2047, got {env!r}")
    mallopt = _glibc("mallopt") if mib > 0 else None
    if mallopt is None:
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(_M_TOP_PAD, int(mib) << 20) != 1:
        return None
    # setting M_TOP_PAD stops glibc from moving its mmap threshold: fix it rather than keep
    # wherever this process's history left it (a 32-bit glibc refuses 32 MiB: say only what held)
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MIB << 20) == 1:
        return (f"heap: glibc keeps {mib} MiB of freed memory mapped and serves blocks below "
                f"{MMAP_THRESHOLD_MIB} MiB from its heap (M_TOP_PAD, M_MMAP_THRESHOLD; {HEAP_PAD_ENV}=0 "
                "turns this off)")
    return f"heap: glibc keeps {mib} MiB of freed memory mapped (M_TOP_PAD; {HEAP_PAD_ENV}=0 turns this off)"


def release_free_heap() -> bool:
    """Hand the free parts of glibc's heap back to the system now (``malloc_trim(0)``).

    Called just before the split step forks its child: a page of freed heap that both processes
    still map is copied as soon as the parent reuses it, and the child's copy of the old page
    then counts as the child's own memory. Measured on the 784-400-20 model: the child's
    private heap fell from 13 MiB to 4 MiB. Returns False where there is nothing to call (not
    glibc).
    """
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    trim(0)
    return True
