"""The wall between the grader and a submission, built by the operating system.

Run as root (Gradescope always is; so are CI and most grading servers), every child
that runs student code is started by ``launch.py``: it becomes an unprivileged user
of its own (``numpyvae-student``, or ``numpyvae-studentN`` for the N-th grading that
runs at the same time, so two submissions never share a user), with no network
(a fresh network namespace), the reference package, the results and the other
submissions covered by an empty tmpfs (a fresh mount namespace; where the kernel
refuses one, only file permissions protect them), a process-count limit, and an
interpreter whose path holds NumPy and nothing of numpyvae. Before each verdict
every process of that user is killed (``kill_user``), so nothing the submission
started can write later. Each of these is tried, not assumed: ``Plan.off`` lists
what this machine does not give, and the report says so on its first line.

As an ordinary user (an instructor's laptop) none of this is possible: the child
runs as the grader's own user, and ``Plan.off`` says which protections are off.
"""
from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Plan", "acquire", "kill_user", "read_student_file", "STUDENT_USER"]

STUDENT_USER = "numpyvae-student"
NPROC = 64                   # processes (threads count too) of one submission's user
SLOTS = 32
LAUNCH = Path(__file__).with_name("launch.py")
REFERENCE_DIR = Path(__file__).resolve().parent.parent      # the numpyvae package
_LOCK_DIR = "/run/numpyvae-grader"
_lock = threading.Lock()
_facts: dict = {}


def is_root() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


@dataclass
class Plan:
    """How one grading runs its children. uid None: no separate user (not root)."""
    uid: int | None = None
    gid: int | None = None
    net: bool = False
    hide: list = field(default_factory=list)
    python: str = sys.executable
    numpy_dir: str | None = None       # the folder that holds numpy, put alone on the path
    off: list = field(default_factory=list)
    _slot_fd: int | None = None

    def argv(self, work: Path, script: Path, args: list, env: dict) -> list:
        """The command that runs ``script args`` as the submission's user in ``work``."""
        if self.numpy_dir:           # -S: no site-packages; a folder with numpy alone instead
            lib = _numpy_only(self.numpy_dir)
            boot = (f"import sys, runpy; sys.path.insert(0, {str(lib)!r}); sys.argv = sys.argv[1:]; "
                    "runpy.run_path(sys.argv[0], run_name='__main__')")
            inner = [self.python, "-I", "-S", "-c", boot, str(script), *args]
        else:
            inner = [self.python, "-I", str(script), *args]
        if self.uid is None:
            return inner
        cfg = {"uid": self.uid, "gid": self.gid, "net": self.net, "hide": self.hide,
               "nproc": NPROC, "cwd": str(work), "env": env, "parent": os.getpid()}
        return [sys.executable, "-I", "-S", str(LAUNCH), json.dumps(cfg), "--", *inner]

    def own(self, path: Path) -> None:
        """Hand a folder made by the grader to the submission's user (mode 0700)."""
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o700)

    def kill_all(self) -> None:
        """Kill every process of the submission's user and wait until they are gone."""
        if self.uid is not None:
            kill_user(self.uid, self.gid, self.python)

    def release(self) -> None:
        self.kill_all()
        if self._slot_fd is not None:
            os.close(self._slot_fd)       # drops the flock: the user is free again
            self._slot_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _numpy_only(numpy_dir: str) -> str:
    """A folder (made once, root's, world-readable) holding links to numpy and nothing else."""
    with _lock:
        lib = _facts.get(("lib", numpy_dir))
        if lib is None:
            import atexit
            lib = tempfile.mkdtemp(prefix="numpyvae-numpy-only-")
            os.chmod(lib, 0o755)
            # links where the student's user can follow them; a copy where numpy sits behind a
            # folder closed to others (a virtual environment made in a private temporary folder)
            reachable = _others_can_run(os.path.join(numpy_dir, "numpy", "__init__.py"), need_exec=False)
            for name in ("numpy", "numpy.libs"):
                src, dst = os.path.join(numpy_dir, name), os.path.join(lib, name)
                if not os.path.exists(src):
                    continue
                if reachable:
                    os.symlink(src, dst)
                else:
                    shutil.copytree(src, dst, symlinks=True)
                    for root, dirs, files in os.walk(dst):
                        for d in dirs:
                            os.chmod(os.path.join(root, d), 0o755)
                        for f in files:
                            os.chmod(os.path.join(root, f), 0o755 if f.endswith(".so") or ".so." in f
                                     else 0o644)
            atexit.register(shutil.rmtree, lib, True)
            _facts[("lib", numpy_dir)] = lib
    return lib


# --------------------------------------------------------------------------- users and slots
def _user(slot: int):
    """(uid, gid) of the slot's unprivileged user, created when missing."""
    name = STUDENT_USER + ("" if slot == 0 else str(slot))
    for attempt in range(2):
        try:
            pw = pwd.getpwnam(name)
            if pw.pw_uid == 0 or pw.pw_gid == 0:
                raise RuntimeError(f"the user {name} has root's uid or gid; remove it")
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            if attempt == 0 and shutil.which("useradd"):
                with _lock:
                    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                                    "/nonexistent", "--shell", "/usr/sbin/nologin",
                                    "--user-group", name], capture_output=True)
    # no useradd (or it failed): a numeric uid no account uses works as well for setuid
    return 61000 + slot, 61000 + slot


def acquire(hide=()) -> Plan:
    """The plan for one grading (as a context manager: it frees its user at the end).

    hide: folders the submission must not see (results, other submissions, the manifest).
    """
    if not is_root():      # numpy alone on the path still; everything else is off
        import numpy
        return Plan(numpy_dir=os.path.dirname(os.path.dirname(os.path.realpath(numpy.__file__))),
                    off=["separate user", "hidden reference (not on the path, but readable)",
                         "no network", "process limit", "cleanup of escaped processes"])
    os.makedirs(_LOCK_DIR, mode=0o700, exist_ok=True)
    while True:
        dead = 0
        for slot in range(SLOTS):
            fd = os.open(f"{_LOCK_DIR}/slot{slot}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            uid, gid = _user(slot)
            plan = Plan(uid=uid, gid=gid, _slot_fd=fd)
            try:
                plan.kill_all()                   # whatever a killed grader left behind
                if _zombies_of(uid):
                    # killed processes nobody reaps (an init that does not wait, as in some
                    # containers) still count against this user's process limit: another user
                    plan.release()
                    dead += 1
                    continue
                _sweep(uid)
                _fill(plan, list(hide))
            except BaseException:
                plan.release()
                raise
            return plan
        if dead == SLOTS:
            raise RuntimeError("every student user holds processes that were killed but never reaped "
                               "(the machine's init does not reap orphans); restart the container")
        time.sleep(0.05)


def _zombies_of(uid: int) -> list:
    """Dead but unreaped processes of ``uid`` (they still count against its process limit)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="utf-8", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        if str(uid) in fields.get("Uid", "").split()[:3] and fields.get("State", "").strip().startswith("Z"):
            out.append(int(entry))
    return out


def work_base() -> str | None:
    """Root: the folder (root's, mode 0711) that holds the submissions' folders, so no
    submission can rename its own folder away under the grader. Else None (the default
    temporary folder)."""
    if not is_root():
        return None
    base = os.path.join(tempfile.gettempdir(), "numpyvae-grading")
    try:
        os.mkdir(base, 0o711)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
        raise RuntimeError(f"{base} is not a folder of root's; remove it")
    os.chmod(base, 0o711)
    return base


def _sweep(uid: int) -> None:
    """Remove grading folders a killed grader left to this slot's user (only the slot's
    holder uses that user, so any such folder is stale)."""
    base = work_base() or tempfile.gettempdir()
    for name in os.listdir(base):
        if name.startswith(("numpyvae-grade-", "numpyvae-probe-")):
            p = os.path.join(base, name)
            try:
                if os.lstat(p).st_uid == uid:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


def _secret_dirs(python, numpy_dir):
    """The reference package, or the whole source checkout it sits in when that is safe."""
    pkg = str(REFERENCE_DIR)
    root = REFERENCE_DIR.parent
    if (root / "pyproject.toml").exists():
        keep = [python, numpy_dir or ""]
        if not any(os.path.realpath(k).startswith(str(root) + os.sep) for k in keep if k):
            return [pkg, str(root)]
        return [pkg] + [str(root / d) for d in ("derivations", "tests", ".git")
                        if (root / d).is_dir()]
    return [pkg]


def _candidates():
    v = f"python{sys.version_info.major}.{sys.version_info.minor}"
    env = os.environ.get("NUMPYVAE_STUDENT_PYTHON")
    out = [(env, None)] if env else []
    import numpy
    numpy_dir = os.path.dirname(os.path.dirname(os.path.realpath(numpy.__file__)))
    for p in (sys.executable, os.path.realpath(sys.executable), f"/usr/bin/{v}",
              f"/usr/local/bin/{v}", shutil.which(v)):
        if p and (p, numpy_dir) not in out and _others_can_run(p):
            out.append((p, numpy_dir))
    return out


def _others_can_run(path: str, need_exec: bool = True) -> bool:
    """Whether a user with no group in common may run ``path`` (every folder on the way
    searchable by others, the file executable by others; readable with ``need_exec=False``);
    skips hopeless probes."""
    try:
        real = os.path.realpath(path)
        if not os.stat(real).st_mode & (0o001 if need_exec else 0o004):
            return False
        d = os.path.dirname(real)
        while True:
            if not os.stat(d).st_mode & 0o001:
                return False
            if d == os.path.dirname(d):
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


_PROBE = """
import json, os, sys
r = {"numpy": False, "numpyvae": "", "readable": [], "ifaces": []}
try:
    import numpy
    r["numpy"] = True
except BaseException:
    pass
try:
    import numpyvae
    r["numpyvae"] = str(getattr(numpyvae, "__file__", "importable"))
except BaseException:
    pass
for p in SECRETS:
    try:
        os.listdir(p)
        r["readable"].append(p)
    except OSError:
        pass
try:
    import socket
    r["ifaces"] = [n for _, n in socket.if_nameindex()]
except OSError:
    pass
print(json.dumps(r))
"""


def _fill(plan: Plan, hide: list) -> None:
    """Decide the interpreter and the walls, trying each as the student's user."""
    with _lock:
        if "ns" not in _facts:
            out = subprocess.run([sys.executable, "-I", "-S", str(LAUNCH), "--probe"],
                                 capture_output=True, text=True, timeout=60)
            _facts["ns"] = json.loads(out.stdout or "{}")
    ns = _facts["ns"]
    plan.net = bool(ns.get("net"))
    if not plan.net:
        plan.off.append("no network (the kernel refused a network namespace)")
    tried = []
    for python, numpy_dir in _candidates():
        secrets = _secret_dirs(python, numpy_dir)
        needed = [tempfile.gettempdir(), python, os.path.realpath(python), numpy_dir or ""]
        walls, kept = [], []
        for d in secrets + hide:
            if not d or not os.path.isdir(d) or d in walls:
                continue
            inside = [n for n in needed if n and (n + os.sep).startswith(d.rstrip(os.sep) + os.sep)]
            (kept if inside else walls).append(d)
        plan.python, plan.numpy_dir = python, numpy_dir
        plan.hide = walls if ns.get("mount") else []
        # the temporary folder is part of the key: the NumPy-only path the student's interpreter
        # gets lives there, and a folder the student cannot enter (a test's private TMPDIR) fails
        # the probe; a failed probe is never kept, so it cannot poison later gradings
        key = (python, numpy_dir, tuple(walls), tempfile.gettempdir())
        with _lock:
            result = _facts.get(key)
        if result is None:
            result = _probe(plan, secrets + hide)
            if result.get("numpy"):
                with _lock:
                    _facts[key] = result
        if result.get("numpy"):
            break
        tried.append(python)
    else:
        raise RuntimeError("no Python interpreter the student user can run with NumPy ("
                           + ", ".join(tried) + "); set NUMPYVAE_STUDENT_PYTHON to one")
    if kept:
        plan.off.append("hidden folders: " + ", ".join(kept) + " (they hold what the "
                        "grading needs; only file permissions protect them)")
    if not ns.get("mount"):
        plan.off.append("hidden folders (the kernel refused a mount namespace; "
                        "file permissions only)")
    if result.get("numpyvae"):
        plan.off.append(f"numpyvae is importable by the submission ({result['numpyvae']})")
    if result.get("readable"):
        plan.off.append("readable by the submission: " + ", ".join(result["readable"]))
    if plan.net and [i for i in result.get("ifaces", []) if i != "lo"]:
        plan.off.append("no network (the submission still sees a network interface)")


def _probe(plan: Plan, secrets: list) -> dict:
    work = Path(tempfile.mkdtemp(prefix="numpyvae-probe-"))
    try:
        plan.own(work)
        script = work / "probe.py"
        script.write_text(f"SECRETS = {secrets!r}\n" + _PROBE, encoding="utf-8")
        os.chmod(script, 0o644)
        out = subprocess.run(plan.argv(work, script, [], {"PATH": "/usr/bin:/bin"}),
                             capture_output=True, text=True, timeout=60, cwd=work)
        lines = out.stdout.strip().splitlines()
        return json.loads(lines[-1]) if out.returncode == 0 and lines else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}
    finally:
        plan.kill_all()
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- cleanup
def _pids_of(uid: int) -> list:
    """Live (not zombie) processes whose real, effective or saved uid is ``uid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="utf-8", errors="replace") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uids = fields.get("Uid", "").split()
        if str(uid) in uids[:3] and not fields.get("State", "").strip().startswith(("Z", "X")):
            pids.append(int(entry))
    return pids


def kill_user(uid: int, gid: int, python: str | None = None, timeout: float = 10.0) -> None:
    """SIGKILL every process of ``uid`` and return once none is left.

    First ``kill(-1, SIGKILL)`` from a process of that user (the kernel sends it to
    all of them at once, so a fork loop cannot outrun it), then /proc is scanned and
    anything left is killed, until nothing runs as ``uid``.
    """
    if _pids_of(uid):
        try:                 # ``python``: an interpreter that user may run
            subprocess.run([python or sys.executable, "-I", "-S", "-c",
                            "import os; os.kill(-1, 9)"], user=uid, group=gid,
                           extra_groups=[], capture_output=True, env={}, cwd="/", timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass             # the scan below still kills them, one by one
    deadline = time.monotonic() + timeout
    while True:
        pids = _pids_of(uid)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of uid {uid} survive SIGKILL: {pids}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def read_student_file(path, cap: int = 256 * 2**20) -> bytes | None:
    """The bytes of a file the submission wrote, or None: never follows a link, never
    blocks on a FIFO, never reads more than ``cap`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size < cap:
            b = os.read(fd, min(1 << 20, cap - size))
            if not b:
                break
            chunks.append(b)
            size += len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)
