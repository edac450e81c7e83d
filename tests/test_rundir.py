"""Run bookkeeping: fresh run directories, runs/latest, locks, stale temporary files, BLAS threads,
the memory estimate."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import numpyvae as nv
from numpyvae.training import checkpoint as ck
from numpyvae.speed import threads
from numpyvae.training import memory, rundir


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ------------------------------------------------------------------------------ run directories
def test_new_run_dirs_are_fresh_and_latest_follows(tmp_path):
    root = str(tmp_path / "runs")
    a = rundir.new_run_dir(root, "mnist-embedded", now=0.0)
    b = rundir.new_run_dir(root, "mnist-embedded", now=0.0)  # same second: still a new directory
    assert a != b and os.path.isdir(a) and os.path.isdir(b)
    assert os.path.basename(a).endswith("-mnist-embedded") and b == a + "-2"
    rundir.point_latest(root, a)
    (tmp_path / "runs" / os.path.basename(a) / "f.txt").write_text("a")
    assert (tmp_path / "runs" / "latest" / "f.txt").read_text() == "a"
    rundir.point_latest(root, b)
    assert rundir.resolve(os.path.join(root, "latest", "f.txt")) == os.path.join(root, "latest", "f.txt")
    assert not (tmp_path / "runs" / "latest" / "f.txt").exists()  # latest now names b


def test_latest_pointer_file_is_followed(tmp_path):
    # where symbolic links cannot be made, runs/latest is a small file naming the run
    run = tmp_path / "runs" / "20260101-000000-frey"
    run.mkdir(parents=True)
    (run / "checkpoint.npz").write_bytes(b"x")
    (tmp_path / "runs" / "latest").write_text("20260101-000000-frey\n")
    got = rundir.resolve(str(tmp_path / "runs" / "latest" / "checkpoint.npz"))
    assert got == str(run / "checkpoint.npz")


def test_latest_directory_from_an_old_version_is_left_alone(tmp_path):
    old = tmp_path / "runs" / "latest"
    old.mkdir(parents=True)
    (old / "checkpoint.npz").write_bytes(b"old")
    new = rundir.new_run_dir(str(tmp_path / "runs"), "x")
    note = rundir.point_latest(str(tmp_path / "runs"), new)
    assert note is not None and "left" in note
    assert (old / "checkpoint.npz").read_bytes() == b"old"


# ------------------------------------------------------------------------------ locks
def test_lock_is_exclusive_while_its_owner_lives(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / rundir.LOCK_NAME).write_text(f"{sleeper.pid}\n")
        with pytest.raises(rundir.RunLocked, match=f"pid {sleeper.pid}"):
            rundir.RunLock(str(tmp_path)).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    said = []
    with rundir.RunLock(str(tmp_path), say=said.append) as lock:  # the owner is gone: stale, taken over
        assert (tmp_path / rundir.LOCK_NAME).read_text().split()[0] == str(os.getpid())
        assert said and "stale" in said[0] and str(sleeper.pid) in said[0]
        assert lock.held
    assert not (tmp_path / rundir.LOCK_NAME).exists()


# ------------------------------------------------------------------------------ stale .tmp files
def test_stale_tmp_files_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / f".checkpoint.npz.pid{_dead_pid()}.abc.tmp"
    live = tmp_path / f".checkpoint.npz.pid{os.getpid()}.def.tmp"
    old = tmp_path / ".history.csv.xyz.tmp"  # no pid: removed only when old
    young = tmp_path / ".samples.png.uvw.tmp"
    mine = tmp_path / "notes.tmp"  # not hidden: not ours
    for f in (dead, live, old, young, mine):
        f.write_bytes(b"\0" * 100)
    past = time.time() - 2 * rundir.TMP_MAX_AGE
    os.utime(old, (past, past))
    ck.atomic_write(tmp_path / "history.csv", lambda fh: fh.write(b"epoch\n"))
    assert not dead.exists() and not old.exists()
    assert live.exists() and young.exists() and mine.exists()
    assert (tmp_path / "history.csv").read_bytes() == b"epoch\n"


# ------------------------------------------------------------------------------ BLAS threads
def test_auto_threads_policy():
    none: dict[str, str] = {}
    # the other CPU busy: one thread, never a fight over the cores
    assert threads.choose_threads("auto", cpus=2, cores=2, load=1.2, env=none)[0] == 1
    assert threads.choose_threads("auto", cpus=2, cores=2, load=3.0, env=none)[0] == 1
    # idle machine: the physical cores, at most MAX_AUTO
    assert threads.choose_threads("auto", cpus=2, cores=2, load=0.1, env=none)[0] == 2
    assert threads.choose_threads("auto", cpus=64, cores=32, load=0.0, env=none)[0] == threads.MAX_AUTO
    assert threads.choose_threads("auto", cpus=8, cores=4, load=5.0, env=none)[0] == 3
    assert threads.choose_threads("auto", cpus=1, cores=1, load=0.0, env=none)[0] == 1
    # a count fixed by the user wins, and says so
    n, why = threads.choose_threads("auto", cpus=8, cores=8, load=0.0, env={"OPENBLAS_NUM_THREADS": "1"})
    assert n == 1 and "OPENBLAS_NUM_THREADS" in why
    assert threads.choose_threads(3) == (3, "--threads")
    with pytest.raises(ValueError, match="threads"):
        threads.choose_threads("many")
    # threads that split the minibatch follow the same policy and say they split
    n, why = threads.choose_threads("auto", cpus=2, cores=2, load=0.1, env=none, split=True)
    assert n == 2 and "split" in why
    assert threads.choose_threads("auto", cpus=2, cores=2, load=1.2, env=none, split=True)[0] == 1
    assert threads.choose_threads("auto", cpus=8, cores=8, load=0.0, env={"OMP_NUM_THREADS": "3"}, split=True)[0] == 3


def test_blas_threads_limit_applies_and_is_restored():
    from threadpoolctl import threadpool_info

    def blas_counts():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_counts()
    with threads.blas_threads(1) as applied:
        assert applied and all(n == 1 for n in blas_counts())
    assert blas_counts() == before


# ------------------------------------------------------------------------------ memory estimate
@pytest.mark.parametrize("x_dim,z_dim,hidden,lik", [(784, 20, (400,), "bernoulli"), (16, 3, (), "gaussian"),
                                                    (30, 5, (12, 7), "gaussian_learned")])
def test_parameter_count_matches_the_model(x_dim, z_dim, hidden, lik):
    vae = nv.VAE(x_dim=x_dim, z_dim=z_dim, hidden=hidden, likelihood=lik, seed=0)
    assert memory.n_params(x_dim, z_dim, hidden, lik) == vae.flat_params.size


def test_memory_estimate_grows_with_every_size_and_largest_fitting_is_exact():
    base = memory.run_bytes(784, 20, (400,))
    assert 6 * 652_824 * 4 <= base < 100 * 2**20  # the default model: tens of MB, not GB
    assert memory.run_bytes(784, 40, (400,)) > base
    assert memory.run_bytes(784, 20, (800,)) > base
    assert memory.run_bytes(784, 20, (400,), k=10) > base
    need = lambda v: memory.run_bytes(784, v, (400,))  # noqa: E731
    best = memory.largest_fitting(need, 10 * base, 10**9)
    assert need(best) <= 10 * base < need(best + 1)
    assert memory.fmt_bytes(1536) == "1.5 KiB" and memory.fmt_bytes(3 * 2**40) == "3.0 TiB"
