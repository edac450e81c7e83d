"""glibc's heap, set so that a training step's temporaries stay mapped (a speed setting).

``keep_freed_heap``: glibc returns the top of its heap to the system as soon as a few hundred
KB are free there, so a training step whose temporaries are (B, 784) arrays pays page faults for
the same memory on every step (measured: the tanh backward ``dy * (1 - y * y)`` on a (128, 400)
float32 array took 160 us instead of 20). Asking glibc to keep some free heap mapped removes
that cost. It also fixes glibc's mmap threshold: glibc serves blocks above it with fresh pages
from the system, and raises it only as large blocks are freed, so whether a step's (B, 784)
temporaries came from the heap depended on what the process had freed before (measured:
``bernoulli_log_prob`` on (128, 784) float32 took 870 us after nothing large was freed, 280 us
after). It changes the whole process's allocator, so only the command line (through
``numpyvae.speed.Speed``) sets it, never ``Trainer.fit``. ``release_free_heap`` is its opposite,
for the moment before the split step forks its child (``split.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Any

__all__ = ["keep_freed_heap", "release_free_heap", "HEAP_PAD_ENV"]


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
