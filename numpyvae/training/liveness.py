"""Is a process still running, and is it still the same process? Safe on every OS.

A lock file or a temporary file names the process that made it. Before treating such a file
as abandoned, numpyvae asks two questions:

* ``pid_alive(pid)``: does a process with this number exist? ``True``, ``False`` or ``None``
  (cannot tell). On POSIX this is ``os.kill(pid, 0)``, which sends nothing. On Windows
  ``os.kill`` *terminates* the process whatever the signal number, so it is never used there:
  the probe opens the process with ``OpenProcess`` and reads its exit code through ``ctypes``
  (no ctypes, or an unexpected error: ``None``).
* ``identity(pid)``: what tells this process from a later one that reuses its number: the
  machine's name, the boot it runs in (``/proc/sys/kernel/random/boot_id``) and the process's
  start time (field 22 of ``/proc/<pid>/stat``). Where there is no ``/proc`` (macOS,
  Windows) the last two are ``None`` and a reused number cannot be told apart; callers then
  say how to clear the file by hand.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

__all__ = ["pid_alive", "identity", "same_process"]

_STILL_ACTIVE = 259                       # GetExitCodeProcess of a running process
_QUERY_LIMITED_INFORMATION = 0x1000       # the least access right OpenProcess accepts
_ERROR_INVALID_PARAMETER = 87             # OpenProcess on a number no process has
_ERROR_ACCESS_DENIED = 5                  # the process exists, owned by someone else


def _on_windows() -> bool:
    return os.name == "nt" or sys.platform.startswith("win")


def _kernel32() -> Any:
    """The Windows kernel32 library through ctypes, or None where there is none."""
    try:
        import ctypes

        return ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    except (ImportError, OSError, AttributeError):
        return None


def _alive_windows(pid: int) -> bool | None:
    import ctypes

    k32 = _kernel32()
    if k32 is None:
        return None
    handle = k32.OpenProcess(_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        err = ctypes.get_last_error() if hasattr(ctypes, "get_last_error") else 0
        return {_ERROR_INVALID_PARAMETER: False, _ERROR_ACCESS_DENIED: True}.get(err)
    try:
        code = ctypes.c_ulong()
        if not k32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return None
        return code.value == _STILL_ACTIVE
    finally:
        k32.CloseHandle(handle)


def pid_alive(pid: int) -> bool | None:
    """True when a process with this pid exists on this machine, False when none does, None
    when it cannot be told. Never signals or stops the process, on any OS."""
    if pid <= 0:
        return False
    if _on_windows():
        return _alive_windows(pid)
    try:
        os.kill(pid, 0)  # POSIX: signal 0 checks existence and permission, delivers nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return None
    return True


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), else None."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces: split after it
    return fields[19] if len(fields) > 19 else None  # field 22 of the whole line


def _boot_id() -> str | None:
    text = _read("/proc/sys/kernel/random/boot_id")
    return text.strip() or None if text else None


def identity(pid: int | None = None) -> dict[str, Any]:
    """``{"pid", "host", "boot", "start"}`` of process ``pid`` (default: this one); ``boot`` and
    ``start`` are None where the system does not expose them."""
    pid = os.getpid() if pid is None else int(pid)
    return {"pid": pid, "host": socket.gethostname(), "boot": _boot_id(), "start": _start_time(pid)}


def same_process(recorded: dict[str, Any]) -> bool | None:
    """Whether the process ``recorded`` (an ``identity``) is still running: True, False, or None
    when it cannot be told (another machine; or its number is in use but nothing recorded
    tells the first owner from a later one)."""
    pid = int(recorded.get("pid") or 0)
    host = recorded.get("host")
    if host is not None and host != socket.gethostname():
        return None
    boot = recorded.get("boot")
    if boot is not None and _boot_id() is not None and boot != _boot_id():
        return False          # written before the machine restarted
    alive = pid_alive(pid)
    if alive is not True:
        return alive
    start, now = recorded.get("start"), _start_time(pid)
    if start is not None and now is not None:
        return start == now   # a different start time: the number was reused
    return None
