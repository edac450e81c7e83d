"""What the command says when something goes wrong, and the exit code it ends with: the one
place where an exception becomes a line on stderr.

``CLIError`` is a user-facing error; ``USER_ERRORS`` are the exceptions that end the command
with ``error_line(exc)`` (one line ``numpyvae: error: ...``) and exit code 2 (bad arguments or
inputs: a missing file, an unreadable checkpoint, a run directory in use, ...). A training run
that diverged or whose worker stopped ends with 1 (``stop_line``); Ctrl-C with 130, SIGTERM and
SIGHUP with 143 and 129 (``interrupt_words``, ``exit_code``).

``os_error_message(exc, run_dir, resume)`` turns an ``OSError`` into its line: a full disk
names the file being written, says the last checkpoint is intact and prints ``resume`` (the
command that continues the run); a read-only or forbidden folder says the folder is not
writable. Other errors keep the system's words, with the file's name.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""


from __future__ import annotations

import errno
import os

from ..training import checkpoint as ck
from ..training import rundir
from ..training.trainer import TrainingDiverged, TrainingStopped
from . import stopping

__all__ = ["PROG", "CLIError", "USER_ERRORS", "EXIT_BAD_INPUT", "one_line", "error_line", "exit_code",
           "interrupt_words", "stop_line", "option_error", "create_error", "os_error_message"]

PROG = "numpyvae"
#: exit codes: a failed run or gradient check; bad arguments or inputs; Ctrl-C (signals: 128 + number)
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


class CLIError(Exception):
    """A user-facing error: printed as one line ``numpyvae: error: <message>``, exit code 2."""


#: the exceptions that end the command with one line ``numpyvae: error: ...`` and exit code 2
USER_ERRORS = (CLIError, ck.CheckpointError, rundir.RunLocked, OSError, ValueError, TypeError, MemoryError)

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def os_error_message(exc: OSError, run_dir: str | None = None, resume: str | None = None) -> str:
    """One line explaining ``exc``; ``run_dir`` is the run's folder (if known) and ``resume``
    the command that continues it (when it has a checkpoint to continue from)."""
    name = exc.filename if isinstance(exc.filename, str) else None
    words = exc.strerror or str(exc)
    if exc.errno in _FULL:
        where = f"while writing {name}" if name else (f"while writing in {run_dir}" if run_dir else "")
        ckpt = os.path.join(run_dir, "checkpoint.npz") if run_dir else None
        if ckpt and os.path.isfile(ckpt) and resume:
            return (f"no space left on the device {where} ({words}); the last checkpoint {ckpt} is intact: "
                    f"free some space, then continue with: {resume}")
        return f"no space left on the device {where} ({words}); free some space and start the run again"
    if exc.errno in _NOT_WRITABLE:
        folder = run_dir
        if name:
            folder = name if os.path.isdir(name) else (os.path.dirname(name) or ".")
        what = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return (f"the folder {folder} is not writable ({what}); choose another --out, or make it writable"
                if folder else f"{name or 'a file'} is not writable ({what})")
    return f"{name}: {words}" if name else words


def one_line(msg: object) -> str:
    """``msg`` as one line: every run of white space (newlines included) becomes one space."""
    return " ".join(str(msg).split())


def error_line(exc: object, prog: str = PROG) -> str:
    """The line a user error prints: ``numpyvae: error: <message on one line>``."""
    return f"{prog}: error: {one_line(exc)}"


def interrupt_words(exc: BaseException) -> str:
    """How a run was interrupted: ``stopped by SIGTERM`` (or SIGHUP), else ``interrupted`` (Ctrl-C)."""
    return f"stopped by {exc.name}" if isinstance(exc, stopping.Stopped) else "interrupted"


def exit_code(exc: BaseException) -> int:
    """The exit code an exception ends the command with (see the module's docstring)."""
    if isinstance(exc, SystemExit):                   # --help / --version from the parser
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    if isinstance(exc, (TrainingDiverged, TrainingStopped)):
        return EXIT_FAILED
    if isinstance(exc, KeyboardInterrupt):            # Ctrl-C, or SIGTERM/SIGHUP as stopping.Stopped
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    return EXIT_BAD_INPUT


def stop_line(exc: BaseException, epoch: int) -> str:
    """The first line after a training run stopped early during ``epoch`` (counted from 1): a
    divergence, a stopped worker, Ctrl-C or a signal."""
    if isinstance(exc, TrainingDiverged):
        return f"{PROG}: error: {exc}"
    if isinstance(exc, TrainingStopped):
        return f"{PROG}: error: {exc}; the last finished epoch is kept"
    return f"{PROG}: {interrupt_words(exc)} during epoch {epoch}; the last finished epoch is kept"


def option_error(option: str, exc: Exception) -> CLIError:
    """A library's refusal (``ValueError``) of an option's value, as ``<option>: <reason>``."""
    return CLIError(f"{option}: {exc}")


def create_error(folder: str, exc: OSError) -> CLIError:
    """A run directory that cannot be made: ``--out <folder>: cannot create the run directory (...)``."""
    return CLIError(f"--out {folder}: cannot create the run directory ({exc.strerror or exc})")
