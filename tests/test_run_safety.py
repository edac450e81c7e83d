"""The files of a run directory are safe: only a run's own temporary files are cleaned, a lock
tells a live holder from a reused process number, and no probe of a process can harm it on
any OS."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time

import pytest

from numpyvae.training import checkpoint as ck
from numpyvae.training import liveness, rundir


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ------------------------------------------------------------------------------ temporary files
def test_only_leftovers_of_a_dead_writer_are_removed(tmp_path):
    dead = _dead_pid()
    ours = tmp_path / f".checkpoint.npz.pid{dead}.ab_cd123.tmp"       # atomic_write's own name
    live = tmp_path / f".checkpoint.npz.pid{os.getpid()}.zz_cd123.tmp"  # its writer still runs
    users = [tmp_path / ".notes.tmp", tmp_path / ".draft.swp.tmp",      # the user's hidden files
             tmp_path / f".mine.pid{dead}.tmp", tmp_path / ".history.csv.xyzabcde.tmp",
             tmp_path / "notes.tmp"]
    for f in [ours, live, *users]:
        f.write_bytes(b"\0" * 100)
    day_ago = time.time() - 86400
    for f in users:
        os.utime(f, (day_ago, day_ago))   # old: the previous rule deleted these after 5 minutes
    ck.atomic_write(tmp_path / "history.csv", lambda fh: fh.write(b"epoch\n"))
    assert not ours.exists() and live.exists()
    assert [f.name for f in users if not f.exists()] == []
    assert (tmp_path / "history.csv").read_bytes() == b"epoch\n"


# ------------------------------------------------------------------------------ locks
def _lock_text(rec: dict) -> str:
    return f"{rec['pid']}\n{json.dumps(rec)}\n"


def test_a_lock_whose_number_was_reused_is_taken_over(tmp_path):
    if liveness.identity()["start"] is None:
        pytest.skip("no process start times on this system (/proc)")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        real = liveness.identity(sleeper.pid)
        # the same number, alive, but started at another time: another process
        (tmp_path / rundir.LOCK_NAME).write_text(_lock_text({**real, "start": str(int(real["start"]) + 7)}))
        said: list[str] = []
        with rundir.RunLock(str(tmp_path), say=said.append):
            assert said and "stale" in said[0] and "another process" in said[0]
        # the true holder, with its own start time, keeps the directory
        (tmp_path / rundir.LOCK_NAME).write_text(_lock_text(real))
        with pytest.raises(rundir.RunLocked, match=f"pid {sleeper.pid}"):
            rundir.RunLock(str(tmp_path)).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_that_cannot_be_judged_says_how_to_clear_it(tmp_path):
    # a lock with only a live pid (no start time recorded): refused, with the way out
    lock = tmp_path / rundir.LOCK_NAME
    lock.write_text(f"{os.getppid()}\n")
    with pytest.raises(rundir.RunLocked) as info:
        rundir.RunLock(str(tmp_path)).acquire()
    assert f"delete {lock}" in str(info.value) and "reused" in str(info.value)
    lock.write_text(_lock_text({"pid": os.getppid(), "host": "another-machine", "boot": None, "start": None}))
    with pytest.raises(rundir.RunLocked, match="another-machine.*delete"):
        rundir.RunLock(str(tmp_path)).acquire()
    assert lock.exists()


def test_a_lock_from_before_a_restart_is_stale(tmp_path):
    me = liveness.identity()
    if me["boot"] is None:
        pytest.skip("no boot id on this system")
    (tmp_path / rundir.LOCK_NAME).write_text(_lock_text({**me, "pid": os.getppid(), "boot": "an-earlier-boot"}))
    said: list[str] = []
    with rundir.RunLock(str(tmp_path), say=said.append):
        assert said and "stale" in said[0]


# ------------------------------------------------------------------------------ the probe on Windows
class _FakeKernel32:
    """OpenProcess/GetExitCodeProcess/CloseHandle as Windows answers them for ``running``."""

    def __init__(self, running: set[int]):
        self.running, self.opened, self.closed = running, [], 0

    def OpenProcess(self, access, inherit, pid):  # noqa: N802 (the Windows name)
        self.opened.append(pid)
        return 1000 + pid

    def GetExitCodeProcess(self, handle, code_ref):  # noqa: N802
        code_ref._obj.value = 259 if handle - 1000 in self.running else 0
        return 1

    def CloseHandle(self, handle):  # noqa: N802
        self.closed += 1
        return 1


def _no_kill(*args):
    raise AssertionError("os.kill terminates the probed process on Windows")


@pytest.mark.parametrize("module,attr,value", [(sys, "platform", "win32"), (os, "name", "nt")])
def test_on_windows_no_process_is_signalled(tmp_path, monkeypatch, module, attr, value):
    dead = _dead_pid()
    k32 = _FakeKernel32(running={os.getpid(), os.getppid()})
    monkeypatch.setattr(module, attr, value)
    monkeypatch.setattr(os, "kill", _no_kill)
    monkeypatch.setattr(liveness, "_kernel32", lambda: k32)
    assert liveness.pid_alive(os.getppid()) is True and liveness.pid_alive(dead) is False
    assert k32.closed == len(k32.opened) == 2
    # every caller of the probe: the lock and the clean-up of atomic writes
    leftover = tmp_path / f".checkpoint.npz.pid{dead}.abcdefgh.tmp"
    leftover.write_bytes(b"x")
    ck.atomic_write(tmp_path / "checkpoint.json", lambda fh: fh.write(b"{}"))
    assert not leftover.exists()
    (tmp_path / rundir.LOCK_NAME).write_text(f"{dead}\n")
    with rundir.RunLock(str(tmp_path)):
        pass
    (tmp_path / rundir.LOCK_NAME).write_text(f"{os.getppid()}\n")
    with pytest.raises(rundir.RunLocked, match="delete"):
        rundir.RunLock(str(tmp_path)).acquire()


def test_on_windows_without_ctypes_nothing_is_judged_dead(tmp_path, monkeypatch):
    dead = _dead_pid()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", _no_kill)
    monkeypatch.setattr(liveness, "_kernel32", lambda: None)
    assert liveness.pid_alive(dead) is None
    leftover = tmp_path / f".checkpoint.npz.pid{dead}.abcdefgh.tmp"
    leftover.write_bytes(b"x")
    ck.atomic_write(tmp_path / "checkpoint.json", lambda fh: fh.write(b"{}"))
    assert leftover.exists()                       # unknown: kept
    (tmp_path / rundir.LOCK_NAME).write_text(f"{dead}\n")
    with pytest.raises(rundir.RunLocked, match="delete"):
        rundir.RunLock(str(tmp_path)).acquire()


def test_windows_probe_maps_open_process_errors(monkeypatch):
    class Refusing(_FakeKernel32):
        def OpenProcess(self, access, inherit, pid):  # noqa: N802
            return 0

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", _no_kill)
    monkeypatch.setattr(liveness, "_kernel32", lambda: Refusing(set()))
    for err, want in ((87, False), (5, True), (6, None)):   # no such process, access denied, other
        monkeypatch.setattr(ctypes, "get_last_error", lambda e=err: e, raising=False)
        assert liveness.pid_alive(4321) is want
