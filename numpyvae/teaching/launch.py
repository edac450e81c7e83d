"""Start a submission's process behind the operating system's walls (run as root, then drop).

The grader runs ``python -I -S launch.py CONFIG -- ARGV...`` as root. Before any
student code exists, this file: moves the process into a new network namespace (no
interface is up, so no network) and a new mount namespace in which an empty,
read-only tmpfs covers every folder in ``hide`` (the reference package, the results,
the other submissions); sets ``RLIMIT_NPROC`` (a fork bomb stops there); drops every
group and becomes the unprivileged ``uid``/``gid``; forbids regaining privileges
(``PR_SET_NO_NEW_PRIVS``); asks for SIGKILL when the grader dies; then ``execve``-s
ARGV. Only the standard library: it must run before anything else is trusted.

``--probe`` reports which namespaces the kernel grants (JSON on stdout) and exits.
Exit status 111 means a wall could not be built; the grader treats that as its own
failure, never as the student's.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import tempfile

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags):
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source, target, fstype, flags, data):
    def enc(s):
        return (None if s is None else s.encode())
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def hide(paths):
    """A private mount namespace in which each folder of ``paths`` is an empty read-only tmpfs."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)      # nothing leaks back to the host
    for p in paths:
        if os.path.isdir(p):
            mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=4k,mode=000")


def probe() -> dict:
    """Which walls this kernel lets root build (each tried in a throwaway child)."""
    out, scratch = {}, tempfile.mkdtemp()
    for name, fn in (("net", lambda: unshare(CLONE_NEWNET)),
                     ("mount", lambda: hide([scratch]))):
        pid = os.fork()
        if pid == 0:
            try:
                fn()
                os._exit(0)
            except BaseException:    # noqa: BLE001 - any failure means "not granted"
                os._exit(1)
        out[name] = os.waitpid(pid, 0)[1] == 0
    os.rmdir(scratch)
    return out


def launch(cfg, argv):
    if cfg.get("net"):
        unshare(CLONE_NEWNET)
    if cfg.get("hide"):
        hide(cfg["hide"])
    if cfg.get("nproc"):
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"], cfg["nproc"]))
    if cfg.get("uid") is not None:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
        if os.getuid() == 0 or os.geteuid() == 0:
            raise OSError("the privileges were not dropped")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0), "pdeathsig")
    if os.getppid() != cfg.get("parent", os.getppid()):
        os._exit(111)            # the grader died before the signal was armed
    os.chdir(cfg["cwd"])
    os.umask(0o077)
    os.execve(argv[0], argv, cfg.get("env", {}))


def main():
    if sys.argv[1:2] == ["--probe"]:
        print(json.dumps(probe()), flush=True)
        return 0
    try:
        cfg, argv = json.loads(sys.argv[1]), sys.argv[sys.argv.index("--") + 1:]
        launch(cfg, argv)
    except BaseException as exc:     # noqa: BLE001 - report and fail closed
        print(f"numpyvae launch: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 111


if __name__ == "__main__":
    os._exit(main())
