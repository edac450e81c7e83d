"""SIGTERM and SIGHUP stop a training run the way Ctrl-C does.

A scheduler, ``kill``, or a closed terminal asks a process to end with SIGTERM or SIGHUP. By
default Python dies on the spot: no message, no figures, no command to continue. Inside
``stop_signals()`` either signal raises ``Stopped`` (a ``KeyboardInterrupt``), so the trainer
returns to its last finished epoch, the run writes its history and figures and prints how to
continue, exactly as after Ctrl-C; the exit code is 128 + the signal's number, as a shell
reports a process ended by that signal. A repeat of the signal while that is being done is
ignored (SIGKILL still ends the process at once). A child process forked meanwhile (the
two-process split step) ignores them: stopping is its parent's business.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

__all__ = ["Stopped", "stop_signals"]

#: The signals that stop a run like Ctrl-C (SIGHUP does not exist on Windows).
SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


class Stopped(KeyboardInterrupt):
    """Raised inside ``stop_signals()`` when SIGTERM or SIGHUP arrives."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Stopped``; the old handlers come back after.
    Outside the main thread (where Python cannot set handlers) it does nothing."""
    owner = os.getpid()
    raised: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != owner or raised:   # a forked child, or a repeat during the clean-up
            return
        raised.append(signum)
        raise Stopped(signum)

    old = {}
    try:
        for s in SIGNALS:
            old[s] = signal.signal(s, handler)
    except ValueError:                        # not the main thread
        pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
