"""Run directories: a fresh one per run, ``runs/latest`` pointing at the newest, a lock while in use.

* ``new_run_dir(root, dataset)`` makes ``root/<YYYYmmdd-HHMMSS>-<dataset>`` (``-2``, ``-3``, ...
  when that name is taken; ``os.mkdir`` is atomic, so two runs started in the same second
  still get two directories).
* ``point_latest(root, run_dir)`` makes ``root/latest`` a symbolic link to the newest run, or,
  where links cannot be made, a small text file holding the run's name; ``resolve(path)``
  follows such a pointer file, so ``runs/latest/checkpoint.npz`` works either way.
* ``RunLock(directory)`` is an exclusive lock file ``.lock`` created with ``O_EXCL`` and
  holding the owner's pid. A lock whose pid is no longer running is stale and is taken over
  (with a message); a live one makes a second run into the same directory fail.
* ``remove_stale_tmp(directory)`` deletes the hidden ``.tmp`` files that an atomic write left
  behind when its process was killed (only when the writer is gone or the file is old).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

__all__ = [
    "LATEST",
    "LOCK_NAME",
    "RunLocked",
    "RunLock",
    "new_run_dir",
    "point_latest",
    "resolve",
    "pid_alive",
    "remove_stale_tmp",
    "TMP_MAX_AGE",
]

LATEST = "latest"
LOCK_NAME = ".lock"
#: A temporary file whose writer cannot be identified is removed once it is this old (seconds).
TMP_MAX_AGE = 300.0
# ".<name>.<pid>.<random>.tmp", as made by checkpoint.atomic_write
_TMP_RE = re.compile(r"^\..*\.tmp$")
_TMP_PID_RE = re.compile(r"\.pid(\d+)\.")


class RunLocked(RuntimeError):
    """Another live process holds the lock of a run directory."""


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def new_run_dir(root: str, dataset: str, now: float | None = None) -> str:
    """Create and return a fresh directory ``root/<timestamp>-<dataset>`` (never an existing one)."""
    os.makedirs(root, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    base = os.path.join(root, f"{stamp}-{_slug(dataset)}")
    path, n = base, 1
    while True:
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1
            path = f"{base}-{n}"


def point_latest(root: str, run_dir: str) -> str | None:
    """Point ``root/latest`` at ``run_dir`` (relative symlink, else a pointer file).

    Returns a note for the user when ``root/latest`` is a real directory (an older run, which
    is left alone), else None.
    """
    latest = os.path.join(root, LATEST)
    if os.path.isdir(latest) and not os.path.islink(latest):
        return (f"{latest} is a directory from an earlier version of numpyvae; it was left as it is "
                f"(the newest run is {run_dir})")
    name = os.path.relpath(run_dir, root)
    tmp = os.path.join(root, f".{LATEST}.pid{os.getpid()}.tmp")
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(name, tmp, target_is_directory=True)
    except (OSError, NotImplementedError):  # no symlinks here (e.g. Windows without privileges)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(name + "\n")
    os.replace(tmp, latest)
    return None


def resolve(path: str) -> str:
    """``path`` with a ``latest`` pointer file (see ``point_latest``) followed, if there is one.

    Symbolic links need nothing: the file system follows them. A path that exists is returned
    unchanged.
    """
    if os.path.exists(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    for i, part in enumerate(parts):
        if part != LATEST:
            continue
        head = os.sep.join(parts[: i + 1]) or os.sep
        if os.path.isfile(head) and os.path.getsize(head) < 4096:
            with open(head, encoding="utf-8", errors="replace") as fh:
                target = fh.read().strip()
            if target:
                parent = os.path.dirname(head)
                return os.path.join(parent, target, *parts[i + 1:])
    return path


class RunLock:
    """Exclusive lock on a run directory: the file ``<directory>/.lock`` holding our pid.

    ``acquire()`` raises ``RunLocked`` when a live process holds it; a lock left by a dead
    process is taken over and ``message`` says so. Use as a context manager.
    """

    def __init__(self, directory: str, say: Callable[[str], None] | None = None):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self.held = False
        self.say = say or (lambda msg: None)

    def acquire(self) -> RunLock:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = self._owner()
                if pid is not None and pid_alive(pid) and pid != os.getpid():
                    raise RunLocked(f"{self.directory} is in use by another numpyvae process (pid {pid}; lock file "
                                    f"{self.path}); wait for it to finish or choose another --out") from None
                if pid == os.getpid():
                    raise RunLocked(f"{self.directory} is already in use by this process "
                                    f"(lock file {self.path})") from None
                self.say(f"taking over the stale lock {self.path} (its process {pid} is no longer running)")
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise RunLocked(f"could not lock {self.directory} (lock file {self.path} keeps reappearing)")

    def _owner(self) -> int | None:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                return int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                if self._owner() == os.getpid():
                    os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_tmp(directory: str, max_age: float = TMP_MAX_AGE, now: float | None = None) -> list[str]:
    """Delete leftover hidden ``.tmp`` files of interrupted atomic writes in ``directory``.

    A file named with its writer's pid (``.<name>.pid<N>.<random>.tmp``) is removed when that
    process is gone; one without a pid only when older than ``max_age`` seconds. A file whose
    writer is alive is never touched. Returns the removed paths.
    """
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not _TMP_RE.match(name):
            continue
        path = os.path.join(directory, name)
        m = _TMP_PID_RE.search(name)
        try:
            if m is not None:
                stale = not pid_alive(int(m.group(1)))
            else:
                stale = now - os.lstat(path).st_mtime > max_age
            if stale and os.path.isfile(path):
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue
    return removed
