"""What the command says when the operating system refuses a file: one line that names the
file, says what is wrong in words, and how to go on.

``os_error_message(exc, run_dir, resume)`` turns an ``OSError`` into that line: a full disk
names the file being written, says the last checkpoint is intact and prints ``resume`` (the
command that continues the run); a read-only or forbidden folder says the folder is not
writable. Other errors keep the system's words, with the file's name.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import errno
import os

__all__ = ["os_error_message"]

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
