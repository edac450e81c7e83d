"""Will a model fit? The memory of a run estimated before anything is allocated.

``numpyvae train --z-dim 1000000000`` should answer in one line what fits on this machine,
not fail deep inside NumPy. ``run_bytes`` counts the parameters (with their gradients, the
optimizer's moments, the copy kept as the last good state and the one written to a
checkpoint) and the activations of one minibatch (forward values and their gradients, K
samples on the decoder side); ``available_bytes`` reads what the machine has free;
``largest_fitting`` finds the largest value of one option that still fits.

The heap setting that keeps a step's temporaries mapped is a speed setting: ``numpyvae/speed/heap.py``.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

__all__ = ["n_params", "run_bytes", "available_bytes", "largest_fitting", "fmt_bytes"]

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
