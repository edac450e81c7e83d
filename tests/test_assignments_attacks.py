"""Attacks on the grader (tests/submissions/attacks/), each graded for real.

Every attack scores full marks when it works. Run as root (CI, Gradescope) the grader
puts each submission behind the operating system's walls (a user of its own, no
network, the reference and results hidden, a process limit, every process killed before
the verdict), and each attack must score 0 and leave no trace. The folders the attacks
aim at are made world-readable and writable here, so only the grader's walls stop them.
As an ordinary user those walls cannot exist: the tests skip, and the report must say
which protections are off.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from numpyvae.teaching import grader, isolation

ATTACKS = Path(__file__).parent / "submissions" / "attacks"
R = "relu_backward"
LIMITS = grader.Limits(timeout=6.0, memory_mb=700)
ROOT = isolation.is_root()
needs_root = pytest.mark.skipif(not ROOT, reason="the walls need root (CI and Gradescope run as root)")


@pytest.fixture
def open_dir():
    """A world-readable, world-writable folder outside pytest's private tmp folder."""
    d = Path(tempfile.mkdtemp(prefix="numpyvae-attack-"))
    os.chmod(d, 0o777)
    yield d
    subprocess.run(["rm", "-rf", str(d)])


def _attack(name, where: Path, **subs) -> Path:
    text = (ATTACKS / f"{name}.py").read_text(encoding="utf-8")
    for key, value in subs.items():
        text = text.replace(f"__{key}__", str(value))
    path = where / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o644)
    return path


def _cli(*args, timeout=120):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "numpyvae", "assignment", "grade", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def pids_dir():
    """A folder where an attack's processes write their pids (world-writable)."""
    d = Path(tempfile.mkdtemp(prefix="numpyvae-pids-"))
    os.chmod(d, 0o777)
    yield d
    subprocess.run(["rm", "-rf", str(d)])


def _alive(pids_dir):
    """The pids recorded in ``pids_dir`` that still run (zombies count as gone)."""
    alive = []
    for f in pids_dir.iterdir():
        pid = int(f.read_text() or f.name) if f.name == "rewriter" else int(f.name)
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


@needs_root
def test_forging_results_and_killing_the_grader_changes_nothing(open_dir):
    results = open_dir / "results"
    results.mkdir(mode=0o777)
    os.chmod(results, 0o777)
    res = results / "results.json"
    sub = _attack("forge_results_and_kill", open_dir, RESULTS=res)
    out = _cli(str(sub), "--exercises", R, "--gradescope", str(res), "--student-id", "a")
    assert out.returncode == 1 and "score 0 / 1" in out.stdout, out.stdout + out.stderr
    data = json.loads(res.read_text(encoding="utf-8"))
    assert data["score"] == 0 and data["tests"][0]["status"] == "failed", data
    assert "forged" not in res.read_text(encoding="utf-8")


@needs_root
def test_a_process_left_behind_cannot_rewrite_the_results(open_dir, pids_dir):
    results = open_dir / "results"
    results.mkdir()
    os.chmod(results, 0o777)
    res = results / "results.json"
    sub = _attack("setsid_rewriter", open_dir, RESULTS=res, PIDS=pids_dir)
    out = _cli(str(sub), "--exercises", R, "--gradescope", str(res), "--student-id", "a")
    assert out.returncode == 1 and "score 0 / 1" in out.stdout, out.stdout + out.stderr
    assert (pids_dir / "rewriter").exists()       # the attack did start its process ...
    assert not _alive(pids_dir)                    # ... and it was killed before the verdict
    time.sleep(2.5)                              # the rewriter would have written by now
    data = json.loads(res.read_text(encoding="utf-8"))
    assert data["score"] == 0 and "rewritten" not in json.dumps(data)


def _grade(path, **kw):
    return grader.grade(path, [R], limits=LIMITS, hidden=True, student_id="attacker", **kw)


@needs_root
@pytest.mark.parametrize("name", ["compile_reference_source", "thread_reference",
                                  "subprocess_reference", "pause_tracer", "relabel_code",
                                  "patch_sandbox_checks", "patch_json_dumps"])
def test_the_reference_is_out_of_reach(open_dir, name):
    sub = _attack(name, open_dir, REFERENCE=grader.REFERENCE_DIR)
    report = _grade(sub)
    row = report.row(R)
    assert row.score == 0 and row.status != "pass", (row.status, row.message)
    assert not [n for n in report.review if n["kind"] == "protection_off"], report.review


@needs_root
def test_no_network(open_dir):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)      # closing the socket would not wake a waiting accept(): poll
    got, graded = [], threading.Event()

    def accept():
        while not graded.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            got.append("connected")         # a connection at all fails the test, data or not
            conn.settimeout(5)
            try:
                got.append(conn.recv(100))
            except OSError:
                pass
            conn.close()
    t = threading.Thread(target=accept)
    t.start()
    try:
        report = _grade(_attack("network_socket", open_dir, PORT=server.getsockname()[1]))
    finally:
        graded.set()
        t.join()
        server.close()
    assert got == [] and "no network" in report.student_output, (got, report.student_output)
    assert report.row(R).score == 0


@needs_root
def test_a_fork_bomb_hits_the_process_limit_and_nothing_survives(open_dir, pids_dir):
    report = _grade(_attack("fork_bomb", open_dir, PIDS=pids_dir))
    forked = int(report.student_output.split("forked ")[1].split()[0])
    assert forked < isolation.NPROC, report.student_output
    assert report.row(R).status == "FAIL"           # graded as usual, zeros
    assert len(list(pids_dir.iterdir())) > 0 and not _alive(pids_dir)


@needs_root
def test_a_batch_submission_cannot_see_or_touch_its_classmates(open_dir):
    batch = open_dir / "batch"
    batch.mkdir()
    os.chmod(batch, 0o777)
    correct = (Path(__file__).parent / "submissions" / "relu_correct.py").read_text()
    for who in ("classmate_a", "classmate_b"):
        (batch / who).mkdir()
        (batch / who / "student_vae.py").write_text(correct)
        os.chmod(batch / who, 0o777)
        os.chmod(batch / who / "student_vae.py", 0o666)
    (batch / "mallory").mkdir()
    _attack("classmates", batch / "mallory", BATCH=batch).rename(batch / "mallory" / "student_vae.py")
    out_dir = open_dir / "grades"
    out = _cli(str(batch), "--exercises", R, "--out", str(out_dir), "--jobs", "2")
    assert out.returncode == 1, out.stdout + out.stderr        # mallory fails
    for who in ("classmate_a", "classmate_b"):
        assert (batch / who / "student_vae.py").read_text() == correct     # untouched
    mallory = json.loads((out_dir / "results" / "mallory.json").read_text())
    assert "classmate" not in json.dumps(mallory), mallory
    rows = (out_dir / "grades.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[1].startswith("classmate_a,") and ",1,1," in rows[1]


def test_the_report_names_the_protections_that_are_off(tmp_path):
    """Whoever runs it: the first line says what is off, and the review says the same."""
    sub = tmp_path / "relu.py"
    sub.write_text((Path(__file__).parent / "submissions" / "relu_correct.py").read_text())
    report = _grade(sub)
    off = [n for n in report.review if n["kind"] == "protection_off"]
    if ROOT:
        assert not off, off            # this machine grants every wall
    else:
        assert off and str(report).splitlines()[0].startswith("WARNING protections off")
        assert "separate user" in off[0]["message"]


@needs_root
def test_a_killed_grader_leaves_no_hidden_case_and_no_process(tmp_path):
    """SIGKILL the grader while the submission loops: the cases were never on disk, and the
    submission's process dies with the grader."""
    import glob
    import signal
    sub = tmp_path / "looper.py"
    sub.write_text((Path(__file__).parent / "submissions" / "loop_in_backward.py").read_text())
    base = isolation.work_base()
    before = set(glob.glob(os.path.join(base, "numpyvae-grade-*")))
    proc = subprocess.Popen([sys.executable, "-m", "numpyvae", "assignment", "grade", str(sub),
                             "--exercises", R, "--hidden", "--student-id", "s", "--timeout", "60"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job, deadline = None, time.monotonic() + 60
    while job is None and time.monotonic() < deadline:
        for d in set(glob.glob(os.path.join(base, "numpyvae-grade-*"))) - before:
            progress = Path(d) / "progress"
            if (Path(d) / "looper.py").exists() and progress.exists() \
                    and "start" in progress.read_text(errors="replace"):
                job = Path(d)
        time.sleep(0.1)
    assert job is not None, "the grading never started"
    def cwd(pid):
        try:
            return os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return ""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and cwd(p) == str(job)]
    assert pids                                   # the submission runs, in its folder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = {f.name for f in job.rglob("*")} if job.exists() else set()
    assert not [n for n in names if n.startswith("in_") or n == "spec.json"], names
    time.sleep(1.0)
    alive = [p for p in pids if os.path.exists(f"/proc/{p}")
             and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"]
    assert not alive, alive


def test_as_an_ordinary_user_the_first_line_says_which_protections_are_off(tmp_path):
    """The grader run as 'nobody': no walls can be built, and its first line says so."""
    import pwd
    import numpy
    if not ROOT:
        user = None                    # already an ordinary user
    else:
        try:
            user = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            pytest.skip("no user 'nobody' to run the grader as")
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if user is not None and not os.access(python, os.X_OK):
        pytest.skip(f"{python} is missing")
    if user is not None and not isolation._others_can_run(numpy.__file__, need_exec=False):
        pytest.skip("this environment's packages sit in a folder 'nobody' cannot enter")
    site = os.path.dirname(os.path.dirname(numpy.__file__))
    pkg = os.path.dirname(os.path.dirname(grader.__file__))
    d = Path(tempfile.mkdtemp(prefix="numpyvae-nobody-"))
    try:
        os.chmod(d, 0o777)
        sub = d / "relu.py"
        sub.write_text((Path(__file__).parent / "submissions" / "relu_correct.py").read_text())
        os.chmod(sub, 0o644)
        cmd = [python if user is not None else sys.executable, "-m", "numpyvae", "assignment",
               "grade", str(sub), "--exercises", R]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{os.path.dirname(pkg)}:{site}",
               "HOME": str(d), "MPLCONFIGDIR": str(d), "TMPDIR": str(d)}
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=d,
                             **({"user": user, "group": user, "extra_groups": []} if user else {}))
    finally:
        subprocess.run(["rm", "-rf", str(d)])
    if user is not None and "Permission denied" in out.stderr:
        pytest.skip("'nobody' cannot read this checkout: " + out.stderr[-200:])
    assert out.returncode == 0, out.stdout + out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("WARNING protections off:") and "separate user" in first, first
    assert "no network" in first and "process limit" in first
