"""Run directories: a fresh one per run, ``runs/latest`` pointing at the newest, a lock while in use.

* ``new_run_dir(root, dataset)`` makes ``root/<YYYYmmdd-HHMMSS>-<dataset>`` (``-2``, ``-3``, ...
  when that name is taken; ``os.mkdir`` is atomic, so two runs started in the same second
  still get two directories).
* ``point_latest(root, run_dir)`` makes ``root/latest`` a symbolic link to the newest run, or,
  where links cannot be made, a small text file holding the run's name; ``resolve(path)``
  follows such a pointer file, so ``runs/latest/checkpoint.npz`` works either way.
* ``RunLock(directory)`` is an exclusive lock file ``.lock`` created with ``O_EXCL`` and
  holding the owner's pid and, on its second line, what tells that process from a later one
  with the same number (``liveness.identity``: machine, boot, start time). A lock whose process
  is gone (or whose number now belongs to another process) is stale and is taken over, with a
  message; a live one makes a second run into the same directory fail; one that cannot be
  judged is refused with the way to clear it by hand.
* ``special_file(path)`` says what ``path`` is when it exists but is no regular file (a named
  pipe, a device, ...): reading one blocks or never ends, so readers refuse it first.
* ``remove_stale_tmp(directory)`` deletes the hidden temporary files that an atomic write
  (``checkpoint.atomic_write``) left behind when its process was killed: only names of that
  exact form, only when their writer is gone. Any other file, however old, is the user's.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable
from typing import Any

from .liveness import identity, pid_alive, same_process

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
    "special_file",
]

LATEST = "latest"
LOCK_NAME = ".lock"
# ".<name>.pid<N>.<8 random characters>.tmp", exactly as checkpoint.atomic_write names them
# (tempfile.mkstemp's random part is 8 characters from [a-z0-9_])
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.pid(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp$")


class RunLocked(RuntimeError):
    """Another live process holds the lock of a run directory."""


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
    """Exclusive lock on a run directory: the file ``<directory>/.lock`` naming its process.

    ``acquire()`` raises ``RunLocked`` when a live process holds it, or when nothing tells
    whether its holder still runs (the message then says how to clear it); a lock left by a
    process that is gone, or whose pid now belongs to another process, is taken over and
    ``say`` reports it. Use as a context manager.
    """

    def __init__(self, directory: str, say: Callable[[str], None] | None = None):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self.held = False
        self.say = say or (lambda msg: None)

    def acquire(self) -> RunLock:
        me = identity()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._judge_existing(me)
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{me['pid']}\n{json.dumps(me)}\n")
            self.held = True
            return self
        raise RunLocked(f"could not lock {self.directory} (lock file {self.path} keeps reappearing)")

    def _judge_existing(self, me: dict[str, Any]) -> None:
        """Return when the existing lock is stale (after saying so); else raise RunLocked."""
        owner = self._owner_record()
        pid = None if owner is None else owner.get("pid")
        clear = (f"if no numpyvae run is using {self.directory}, delete {self.path} and run again")
        if owner is None:
            raise RunLocked(f"{self.directory} has a lock file {self.path} that names no process; {clear}")
        if pid == me["pid"] and owner.get("start") == me["start"] and owner.get("boot") == me["boot"]:
            raise RunLocked(f"{self.directory} is already in use by this process (lock file {self.path})")
        running = same_process(owner)
        if running is True:
            raise RunLocked(f"{self.directory} is in use by another numpyvae process (pid {pid}; lock file "
                            f"{self.path}); wait for it to finish or choose another --out")
        if running is None:
            why = (f"it was taken on the machine {owner.get('host')}" if owner.get("host") not in (None, me["host"])
                   else f"a process with pid {pid} is running and nothing recorded tells whether it is the "
                        "run that took the lock (its number may have been reused)")
            raise RunLocked(f"{self.directory} is locked ({self.path}): {why}; {clear}")
        reused = pid_alive(int(pid)) is True
        self.say(f"taking over the stale lock {self.path} (its process {pid} "
                 + ("has ended; the number now belongs to another process)" if reused else "is no longer running)"))

    def _owner_record(self) -> dict[str, Any] | None:
        """The lock's holder: ``{"pid": N}`` plus, when recorded, host, boot and start time."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
            rec: dict[str, Any] = {"pid": int(lines[0].split()[0])}
        except (OSError, ValueError, IndexError):
            return None
        if len(lines) > 1:
            try:
                more = json.loads(lines[1])
            except ValueError:
                more = None
            if isinstance(more, dict) and more.get("pid") == rec["pid"]:
                rec.update(more)
        return rec

    def _owner(self) -> int | None:
        rec = self._owner_record()
        return None if rec is None else int(rec["pid"])

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


def remove_stale_tmp(directory: str) -> list[str]:
    """Delete leftover temporary files of interrupted atomic writes in ``directory``.

    Only names of the form ``checkpoint.atomic_write`` gives them
    (``.<name>.pid<N>.<8 characters>.tmp``), and only when process N is known to be gone: a
    file whose writer is alive, or cannot be judged, and every other file, are left alone.
    Returns the removed paths.
    """
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TMP_RE.match(name)
        if m is None:
            continue
        path = os.path.join(directory, name)
        try:
            if pid_alive(int(m.group("pid"))) is False and os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue
    return removed


def special_file(path: str) -> str | None:
    """None when ``path`` is missing or a regular file (or a link to one); else what it is,
    e.g. "a named pipe (FIFO)"."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((what for test, what in kinds if test(mode)), "a special file")
