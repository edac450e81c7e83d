"""How many BLAS threads a run uses, chosen on purpose (``--threads N|auto``).

A VAE step is a handful of matrix products of moderate size. On an idle machine two or more
BLAS threads help; on a machine whose other cores are busy, extra BLAS threads wait for each
other and a step can become many times slower than with one thread. Training therefore splits
the minibatch among its threads instead (``parallel.py``), each on a one-thread BLAS; the
evaluation commands still use a multi-threaded BLAS, and only when the machine is idle. ``choose_threads`` is the whole
policy, in one small function so it can be tuned in one place; ``blas_threads`` applies a
count with ``threadpoolctl`` for the duration of a ``with`` block.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from threadpoolctl import threadpool_info, threadpool_limits

__all__ = ["ENV_VARS", "MAX_AUTO", "physical_cores", "choose_threads", "blas_threads", "blas_name"]

#: Environment variables through which a user may already have fixed the BLAS thread count.
ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "BLIS_NUM_THREADS")
#: ``auto`` never picks more threads than this: the products of a VAE step are too small.
MAX_AUTO = 4


def physical_cores() -> int:
    """Number of physical cores (hyper-threads counted once) where Linux says; else os.cpu_count()."""
    try:
        cores = set()
        phys = core = None
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        cores.add((phys, core))
                    phys = core = None
        if core is not None:
            cores.add((phys, core))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def choose_threads(request: str | int = "auto", *, cpus: int | None = None, cores: int | None = None,
                   load: float | None = None, env: dict[str, str] | None = None,
                   split: bool = False) -> tuple[int, str]:
    """Return ``(threads, reason)`` for ``--threads request`` (a positive int or ``"auto"``).

    ``auto``: a thread-count variable already set in the environment (``OPENBLAS_NUM_THREADS``,
    ...) wins; otherwise, when the 1-minute load average shows the other logical CPUs busy
    (fewer than 1.5 of them idle), one thread; otherwise as many threads as there are idle CPUs
    (rounded), at most the physical core count and at most ``MAX_AUTO``. One thread on a busy
    machine holds for both kinds of threads, measured on this project's 2-core machine with
    one other process spinning (``benchmarks/bench_vs_torch.py --busy``): two BLAS threads
    ran 3-5 times slower than one, and a minibatch split in two (``split=True``, training: see
    ``parallel.py``) about half as fast (a sixth slower when its halves were threads), because
    each step waits for the part whose core was taken; a run that starts quiet and gets busy
    is ``parallel.Governor``'s to handle. ``cpus``, ``cores``, ``load`` and ``env`` default to this
    machine's and exist for tests; ``split`` only changes the reason printed.
    """
    if not isinstance(request, str):
        if int(request) < 1:
            raise ValueError(f"threads: expected a positive integer or 'auto', got {request!r}")
        return int(request), "--threads"
    if request != "auto":
        try:
            n = int(request)
        except ValueError:
            raise ValueError(f"threads: expected a positive integer or 'auto', got {request!r}") from None
        return choose_threads(n)
    env = dict(os.environ) if env is None else env
    for var in ENV_VARS:
        value = env.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value), f"auto: {var}={value} is set"
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    cores = cores if cores is not None else physical_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average (Windows)
            load = 0.0
    idle = cpus - load
    if cpus <= 1 or idle < 1.5:
        return 1, f"auto: load {load:.1f} on {cpus} CPUs, the others are busy"
    n = max(1, min(int(idle + 0.5), cores, MAX_AUTO))
    return n, f"auto: load {load:.1f} on {cpus} CPUs, {cores} physical cores" + (
        ", the minibatch split among them" if split and n > 1 else "")


def blas_name() -> str:
    """Name and version of the BLAS NumPy uses, e.g. ``"OpenBLAS 0.3.27"`` (or ``"BLAS"``)."""
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            api = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(info.get("internal_api", ""),
                                                                            info.get("internal_api", "BLAS"))
            version = info.get("version")
            return f"{api} {version}" if version else api
    return "BLAS"


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[bool]:
    """Limit the BLAS to ``n`` threads inside the block (restored afterwards); yields True."""
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield True
