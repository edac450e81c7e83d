"""The speed layer (numpyvae/speed/): the minibatch split across
replicas (on threads, or in a child process) must give the step of one thread, up to the order
of floating-point additions."""
import multiprocessing
import os
import signal
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyvae import VAE, FamilyVAE
from numpyvae import optim
from numpyvae.optim import Adam
from numpyvae.speed.split import (
    MIN_ROWS,
    Governor,
    ProcessSplitStep,
    SplitStep,
    make_split,
    split_sizes,
    uses_processes,
)
from numpyvae.speed import Speed
from numpyvae.speed import split as parallel
from numpyvae.speed import heap as memory
from numpyvae.speed.adam import BlockedAdam
from numpyvae.training import checkpoint as ck
from numpyvae.training.trainer import TrainConfig, Trainer


@given(batch=st.integers(1, 500), k=st.integers(1, 60), threads=st.integers(1, 8))
def test_split_sizes_cover_the_batch_in_near_equal_parts(batch, k, threads):
    sizes = split_sizes(batch, k, threads)
    assert sum(sizes) == batch
    assert 1 <= len(sizes) <= threads
    assert max(sizes) - min(sizes) <= 1
    if len(sizes) > 1:
        assert min(sizes) * k >= MIN_ROWS - k    # no part far below the overhead threshold


def _data(b, d, seed, binary=True):
    rng = np.random.default_rng(seed)
    return (rng.random((b, d)) < 0.3).astype(np.float64) if binary else rng.standard_normal((b, d))


CASES = [
    dict(model=dict(hidden=(16,), activation="tanh"), k=1, kl="closed", beta=1.0),
    dict(model=dict(hidden=(16, 8), activation="relu"), k=3, kl="mc", beta=0.5),
    dict(model=dict(hidden=(12,), activation="tanh", objective="iwae"), k=5, kl="closed", beta=1.0),
    dict(model=dict(hidden=(12,), activation="tanh", posterior="full"), k=2, kl="closed", beta=1.0),
    dict(model=dict(hidden=(10,), activation="softplus", likelihood="gaussian_learned"), k=1, kl="closed",
         beta=1.0, binary=False),
]


FORK = pytest.mark.skipif(not uses_processes(2), reason="the process split needs fork (Linux)")
KINDS = ["threads", pytest.param("process", marks=FORK)]


def _split(kind, vae, threads, batch, k):
    return SplitStep(vae, threads) if kind == "threads" else ProcessSplitStep(vae, batch, k)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c["model"].values()) + f"-k{c['k']}")
@settings(max_examples=8, deadline=None)
@given(batch=st.integers(64, 160), threads=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_split_step_equals_the_one_thread_step(kind, case, batch, threads, seed):
    d, z = 9, 3
    threads = 2 if kind == "process" else threads
    x = _data(batch, d, seed, case.get("binary", True))
    one = (FamilyVAE if {"objective", "posterior"} & set(case["model"]) else VAE)(
        d, z, seed=seed, dtype=np.float64, **case["model"])
    many = one.copy()
    t1 = one.forward(x, k=case["k"], beta=case["beta"], kl=case["kl"])   # draws eps from one.rng
    one.backward()
    with _split(kind, many, threads, batch, case["k"]) as split:
        assert len(split_sizes(batch, case["k"], threads)) > 1 or batch * case["k"] < 2 * MIN_ROWS
        t2 = split.step(x, k=case["k"], beta=case["beta"], kl=case["kl"])
    np.testing.assert_allclose(many.flat_grads, one.flat_grads, rtol=1e-10, atol=1e-12)
    assert np.abs(one.flat_grads).max() > 0
    for name in ("loss", "elbo", "recon", "kl"):
        assert getattr(t2, name) == pytest.approx(getattr(t1, name), rel=1e-12, abs=1e-12)
    for name in ("elbo_per_example", "kl_per_example", "mu", "logvar", "z", "eps", "log_px_z"):
        np.testing.assert_allclose(getattr(t2, name), getattr(t1, name), rtol=1e-12, atol=1e-12)
    # the same draw: both generators are at the same state afterwards
    assert one.rng.bit_generator.state == many.rng.bit_generator.state


def test_replicas_share_the_parameters_and_keep_their_own_gradients():
    vae = VAE(6, 2, hidden=(5,), dtype=np.float64)
    with SplitStep(vae, 3) as split:
        rep = split.replicas[1]
        assert rep.flat_params is vae.flat_params
        vae.flat_params += 1.0                          # what the optimizer does in place
        assert np.array_equal(rep.enc.linears[0].W, vae.enc.linears[0].W)
        assert rep.flat_grads is not vae.flat_grads
        assert not np.shares_memory(rep.flat_grads, vae.flat_grads)


def test_split_step_refuses_what_it_cannot_split():
    with pytest.raises(ValueError, match="threads"):
        SplitStep(VAE(4, 2, hidden=(3,)), 0)
    with pytest.raises(TypeError, match="VAE"):
        SplitStep(object(), 2)


def test_adam_split_over_a_pool_is_the_same_update():
    rng = np.random.default_rng(0)
    n = 5 * BlockedAdam.BLOCK + 123                 # several blocks and a ragged end
    p1 = rng.standard_normal(n).astype(np.float32)
    p2 = p1.copy()
    a1, a2 = BlockedAdam(1e-2), BlockedAdam(1e-2)
    with SplitStep(VAE(4, 2, hidden=(3,)), 3) as split:
        a2.pool, a2.workers = split.pool, 3
        for _ in range(5):
            g = rng.standard_normal(n).astype(np.float32)
            a1.step(p1, g)
            a2.step(p2, g)
    assert np.array_equal(p1, p2) and np.array_equal(a1.m, a2.m) and np.array_equal(a1.v, a2.v)
    assert len(a2._tmp) == 3                 # one scratch block per piece


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("how", ["processes", "threads"])
def test_trainer_on_threads_follows_the_one_thread_run(threads, how, monkeypatch):
    monkeypatch.setenv("NUMPYVAE_SPLIT", how)
    x = _data(700, 20, 1)
    runs = {}
    for th in (1, threads):
        vae = VAE(20, 4, hidden=(24,), activation="tanh", seed=3, dtype=np.float64)
        tr = Trainer(vae, x, x[:100], TrainConfig(epochs=2, batch_size=100, seed=3, progress=False), speed=Speed(th))
        tr.fit()
        runs[th] = (vae.flat_params.copy(), tr.history, tr.optimizer)
    (p1, h1, _), (p2, h2, o2) = runs[1], runs[threads]
    np.testing.assert_allclose(p2, p1, rtol=1e-9, atol=1e-12)
    assert np.abs(p1).max() > 0
    np.testing.assert_allclose(h2["train_loss"], h1["train_loss"], rtol=1e-10)
    np.testing.assert_allclose(h2["val_neg_elbo"], h1["val_neg_elbo"], rtol=1e-10)
    assert o2.pool is None and o2.workers == 1          # the pool is handed back after fit


def test_trainer_threads_must_be_a_positive_integer():
    x = _data(50, 6, 0)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="threads"):
            Trainer(VAE(6, 2, hidden=(4,)), x, speed=Speed(bad))


@pytest.mark.slow
def test_cli_trains_on_two_threads_and_says_so(tmp_path, capsys):
    from numpyvae.cli.main import main
    from numpyvae.training import checkpoint as ck
    args = ["train", "--max-train", "400", "--epochs", "1", "--hidden", "16", "--z-dim", "2", "--no-progress",
            "--batch-size", "100"]
    assert main(args + ["--out", str(tmp_path / "a"), "--threads", "2"]) == 0
    err = capsys.readouterr().err
    assert "threads: 2, each minibatch split in 2 parts" in err
    assert ("the second in a child process" in err) == uses_processes(2)
    assert "whole steps instead" not in err              # an explicit count always splits
    blas = ck.load(tmp_path / "a" / "checkpoint.npz").extra["blas"]
    assert blas["threads"] == 2 and blas["split"] is True and blas["adapt"] is False
    assert main(args + ["--out", str(tmp_path / "b"), "--threads", "1"]) == 0
    one = ck.load(tmp_path / "b" / "checkpoint.npz")
    two = ck.load(tmp_path / "a" / "checkpoint.npz")
    for name, v in one.params.items():
        np.testing.assert_allclose(two.params[name], v, rtol=1e-4, atol=1e-5)   # float32 runs


@pytest.mark.slow
def test_cli_auto_threads_adapt_to_the_load_and_say_so(tmp_path, capsys, monkeypatch):
    from numpyvae.cli.main import main
    from numpyvae.training import checkpoint as ck
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")      # what auto then takes, whatever the load
    assert main(["train", "--max-train", "400", "--epochs", "1", "--hidden", "16", "--z-dim", "2", "--no-progress",
                 "--batch-size", "100", "--threads", "auto", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "whole steps instead while they measure faster" in err and "give --threads to fix it" in err
    blas = ck.load(tmp_path / "a" / "checkpoint.npz").extra["blas"]
    assert blas["threads"] == 2 and blas["adapt"] is True


@pytest.mark.slow
def test_cli_says_when_a_minibatch_is_too_small_to_split(tmp_path, capsys):
    from numpyvae.cli.main import main
    assert main(["train", "--max-train", "100", "--epochs", "1", "--hidden", "8", "--z-dim", "2", "--no-progress",
                 "--batch-size", "20", "--threads", "2", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "a minibatch of 20 x 1 sample(s) splits into 1 part" in err and "1 thread will work" in err


@pytest.mark.slow
def test_the_heap_setting_says_what_it_did_and_reads_its_variable_strictly():
    import subprocess
    import sys
    code = "from numpyvae.speed.heap import keep_freed_heap as k; print(k()); print(k() is k())"

    def run(value):
        env = dict(__import__("os").environ)
        env.pop("NUMPYVAE_HEAP_PAD_MB", None)
        if value is not None:
            env["NUMPYVAE_HEAP_PAD_MB"] = value
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    default = run(None)
    if sys.platform.startswith("linux"):
        assert default.returncode == 0 and "keeps 64 MiB" in default.stdout and "True" in default.stdout
    off = run("0")
    assert off.returncode == 0 and off.stdout.splitlines()[0] == "None"
    for bad in ("lots", "-3", "4096"):
        r = run(bad)
        assert r.returncode != 0 and "NUMPYVAE_HEAP_PAD_MB: expected a whole number of MiB" in r.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_step_sized_block_comes_from_the_heap_whatever_was_freed_before():
    """In a fresh process that has freed nothing large, glibc's mmap threshold is still low; once
    ``keep_freed_heap`` has run, a block of 1 MiB (a minibatch temporary) lies in the heap."""
    import subprocess
    code = """if True:
        import numpy as np
        from numpyvae.speed.heap import keep_freed_heap
        print(keep_freed_heap())
        a = np.empty(1 << 18, dtype=np.float32)
        where = a.__array_interface__["data"][0]
        with open("/proc/self/maps") as f:
            heap = [line.split()[0] for line in f if line.rstrip().endswith("[heap]")]
        lo, hi = (int(v, 16) for v in heap[0].split("-"))
        print("heap" if lo <= where < hi else "mmap")
    """
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMPYVAE_HEAP_PAD_MB"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    said, where = r.stdout.splitlines()
    assert "below 32 MiB from its heap" in said
    assert where == "heap"


def test_the_heap_line_claims_only_the_settings_glibc_took(monkeypatch):
    """A glibc that refuses the mmap threshold (32-bit: at most 1 MiB) still gets the top pad,
    and the line printed by the CLI does not claim the threshold."""
    took = []

    def mallopt(param, value):
        took.append(param)
        return 0 if param == memory._M_MMAP_THRESHOLD else 1
    monkeypatch.delenv(memory.HEAP_PAD_ENV, raising=False)
    monkeypatch.setattr(memory, "_glibc", lambda name: mallopt)
    line = memory.keep_freed_heap.__wrapped__()       # not the cached answer of this process
    assert took == [memory._M_TOP_PAD, memory._M_MMAP_THRESHOLD]
    assert "keeps 64 MiB" in line and "M_MMAP_THRESHOLD" not in line and "32 MiB" not in line
    took.clear()
    monkeypatch.setattr(memory, "_glibc", lambda name: lambda param, value: (took.append(param), 1)[1])
    assert "below 32 MiB from its heap" in memory.keep_freed_heap.__wrapped__()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_the_heap_is_handed_back_before_a_fork():
    """``release_free_heap`` (called before the split forks) finds glibc's malloc_trim and runs it:
    a block freed at the top of the heap stops counting as resident memory."""
    from numpyvae.speed.heap import release_free_heap

    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    blocks = [np.ones(4096, dtype=np.float64) for _ in range(4000)]   # ~130 MB of small heap blocks
    pin = np.ones(4096, dtype=np.float64)      # above them: free() alone cannot shrink the heap past it
    del blocks
    before = rss_kb()
    assert release_free_heap() is True
    assert rss_kb() < before - 50_000
    assert pin.sum() == 4096


# ------------------------------------------------------------------ the child-process split
@FORK
def test_process_split_moves_the_parameters_to_shared_memory_unchanged():
    vae = VAE(6, 2, hidden=(5,), dtype=np.float64, seed=2)
    before, names = vae.flat_params.copy(), list(vae.params)
    with ProcessSplitStep(vae, 64, 1) as split:
        moved = vae.flat_params
        assert np.array_equal(moved, before) and list(vae.params) == names
        assert np.shares_memory(vae.params["enc.0.W"], moved)
        assert np.shares_memory(vae.enc.linears[0].W, moved) and np.shares_memory(vae.enc.linears[0].dW, vae.flat_grads)
        proc = split.worker.proc
        assert proc.is_alive()
    assert split.worker is None and not proc.is_alive() and proc.exitcode == 0
    with ProcessSplitStep(vae, 64, 1):
        assert vae.flat_params is moved          # moved once, then kept where it is


@FORK
def test_the_parents_objects_are_frozen_while_a_split_child_lives():
    """The collector leaves the objects of the fork's moment alone while a child lives (a
    collection would write into their pages and turn shared pages into private copies), and
    has them back once the last child is gone; two live splits share one freeze."""
    import gc
    assert gc.get_freeze_count() == 0
    with ProcessSplitStep(VAE(6, 2, hidden=(5,), seed=2), 64, 1):
        assert gc.get_freeze_count() > 1000     # the modules' functions, classes, dicts...
        with ProcessSplitStep(VAE(6, 2, hidden=(5,), seed=3), 64, 1):
            assert gc.get_freeze_count() > 1000
        assert gc.get_freeze_count() > 1000     # the first child still lives
    assert gc.get_freeze_count() == 0
    gc.freeze()                 # a program that froze its objects itself keeps them frozen
    try:
        before = gc.get_freeze_count()
        with ProcessSplitStep(VAE(6, 2, hidden=(5,), seed=4), 64, 1):
            pass
        assert gc.get_freeze_count() >= before - 100
    finally:
        gc.unfreeze()


@FORK
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_process_split_adam_is_the_one_process_update_bit_for_bit(dtype):
    """Both halves of the update, each in its own process, over enough steps to pass the
    moments' flush, and after the optimizer's state was replaced (load_state_dict)."""
    x = _data(100, 12, 4)
    a = VAE(12, 3, hidden=(10,), activation="relu", seed=4, dtype=dtype)
    b = a.copy()
    oa, ob = BlockedAdam(1e-2, betas=(0.5, 0.9)), BlockedAdam(1e-2, betas=(0.5, 0.9))    # flush every 24 steps
    with ProcessSplitStep(b, 100, 1) as split:
        for i in range(60):
            a.forward(x)
            a.backward()
            split.step(x)
            np.testing.assert_allclose(b.flat_grads, a.flat_grads, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                       atol=1e-6 if dtype == np.float32 else 1e-12)
            b.flat_grads[...] = a.flat_grads      # the same gradient: the update alone is compared
            oa.step(a.flat_params, a.flat_grads)
            assert split.update(ob)
            split.wait()                          # the child's half may still be running
            assert np.array_equal(b.flat_params, a.flat_params) and np.array_equal(ob.m, oa.m)
            if i == 30:
                ob.load_state_dict(oa.state_dict())    # new arrays: update must put them back in shared memory
    assert oa.t == ob.t == 60 and np.abs(a.flat_params).max() > 0


@FORK
def test_process_split_leaves_other_optimizers_to_the_caller():
    vae = VAE(6, 2, hidden=(5,), dtype=np.float64)
    from numpyvae.optim import SGD
    with ProcessSplitStep(vae, 64, 1) as split:
        assert not split.update(SGD(0.1))
        assert not split.update(BlockedAdam(1e-3, weight_decay=0.1))
        assert not split.update(Adam(1e-3))      # the plain update is the caller's


@FORK
def test_process_split_says_when_the_child_is_gone_and_refuses_oversized_steps():
    vae = VAE(9, 3, hidden=(8,), dtype=np.float64)
    x = _data(100, 9, 0)
    with ProcessSplitStep(vae, 100, 1) as split:
        with pytest.raises(ValueError, match="at most 100 examples"):
            split.step(_data(101, 9, 0))
        with pytest.raises(ValueError, match="k = 1"):
            split.step(x, k=2)
        split.step(x)
        os.kill(split.worker.proc.pid, signal.SIGKILL)
        split.worker.proc.join()
        with pytest.raises(RuntimeError, match="worker process .* ended during a step"):
            split.step(x)
    with pytest.raises(RuntimeError, match="closed"):
        split.step(x)


@FORK
def test_process_split_reports_an_error_in_the_child():
    vae = VAE(9, 3, hidden=(8,), dtype=np.float64)
    x = _data(100, 9, 0)
    with ProcessSplitStep(vae, 100, 1) as split:
        split.worker.send("no such request")
        with pytest.raises(RuntimeError, match="failed:(.|\n)*ValueError"):
            split.worker.result()
        split.step(x)           # the child is still serving
        assert np.abs(vae.flat_grads).max() > 0


@FORK
def test_a_step_that_fails_in_the_child_says_why_and_the_next_step_is_whole(monkeypatch):
    """The parent has already asked for the merge when the child's part fails: that answer is
    taken too, so the next step reads its own answers (and equals the one-process step)."""
    parent, calls = os.getpid(), {"n": 0}
    backward = VAE.backward

    def fails_once_in_the_child(self):
        if os.getpid() != parent:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ValueError("boom in the child")
        return backward(self)
    monkeypatch.setattr(VAE, "backward", fails_once_in_the_child)
    vae = VAE(9, 3, hidden=(8,), dtype=np.float64)
    x = _data(100, 9, 0)
    with ProcessSplitStep(vae, 100, 1) as split:
        with pytest.raises(RuntimeError, match="failed:(.|\n)*boom in the child"):
            split.step(x)
        ref = vae.copy()
        t = split.step(x)
        ref.forward(x, eps=t.eps)
        ref.backward()
        np.testing.assert_allclose(vae.flat_grads, ref.flat_grads, rtol=1e-12, atol=1e-14)
        assert split.grad_sq == pytest.approx(float(np.dot(ref.flat_grads, ref.flat_grads)), rel=1e-12)


@FORK
def test_trainer_interrupted_on_two_processes_keeps_its_last_epoch_and_ends_the_child():
    x = _data(600, 20, 1)
    vae = VAE(20, 4, hidden=(24,), activation="tanh", seed=3, dtype=np.float64)
    tr = Trainer(vae, x, None, TrainConfig(epochs=5, batch_size=100, seed=3, progress=False), speed=Speed(2))

    step = tr._step

    def ctrl_c_in_epoch_2(xb, yb, beta, prepare=None):
        if tr.step == 8:                # 6 steps an epoch
            raise KeyboardInterrupt
        return step(xb, yb, beta, prepare)
    tr._step = ctrl_c_in_epoch_2
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    tr._step = step
    assert tr.epoch == 1 and len(tr.history["train_loss"]) == 1      # the state after epoch 1
    assert multiprocessing.active_children() == []
    tr.fit(2)                                                         # and it trains on afterwards
    assert tr.epoch == 2 and multiprocessing.active_children() == []


@FORK
def test_an_optimizer_that_stepped_before_follows_the_moved_parameters():
    x = _data(400, 20, 1)
    runs = {}
    for th in ((1, 1), (1, 2)):
        vae = VAE(20, 4, hidden=(24,), activation="tanh", seed=3, dtype=np.float64)
        tr = Trainer(vae, x, None, TrainConfig(epochs=2, batch_size=100, seed=3, progress=False), speed=Speed(th[0]))
        tr.fit(1)
        tr.speed = Speed(th[1])
        tr.fit(2)
        runs[th] = vae.flat_params.copy()
    np.testing.assert_allclose(runs[(1, 2)], runs[(1, 1)], rtol=1e-9, atol=1e-12)


def test_the_split_kind_reads_its_variable_strictly(monkeypatch):
    vae = VAE(6, 2, hidden=(5,))
    monkeypatch.setenv("NUMPYVAE_SPLIT", "threads")
    with make_split(vae, 2, 64) as split:
        assert type(split) is SplitStep
    monkeypatch.setenv("NUMPYVAE_SPLIT", "fast")
    with pytest.raises(ValueError, match="NUMPYVAE_SPLIT: expected 'processes' or 'threads', got 'fast'"):
        make_split(vae, 2, 64)
    monkeypatch.setenv("NUMPYVAE_SPLIT", "processes")
    with make_split(vae, 3, 64) as split:         # three parts: threads
        assert type(split) is SplitStep


def test_the_governor_probes_then_keeps_the_faster_way_and_backs_off():
    gov = Governor(load=lambda: 0.9, cpus=2)
    ran = []

    def run(steps, split_cost, whole_cost):
        for _ in range(steps):
            split = gov.split_next()
            ran.append(split)
            gov.record(split, 100, 100 * (split_cost if split else whole_cost))
    run(20, 2.0, 1.0)                                   # windows 0 and 1 split
    assert ran == [True] * 20 and gov.best
    run(10, 2.0, 1.0)                                   # window 2: the probe of whole steps
    assert ran[20:] == [False] * 10 and not gov.best    # whole steps measured faster: they run on
    run(240, 2.0, 1.0)
    assert ran[30:] == [False] * 240                    # until the probe at window 2 + 25
    run(10, 2.0, 1.0)
    assert ran[-10:] == [True] * 10 and not gov.best and gov.gap == 50     # confirmed: the gap doubles
    run(490, 2.0, 1.0)
    assert ran[-490:] == [False] * 490
    run(10, 0.5, 1.0)                                   # window 77: the machine went quiet
    assert ran[-10:] == [True] * 10 and gov.best and gov.gap == Governor.PROBE
    run(100, 0.5, 1.0)
    assert ran[-100:] == [True] * 100
    assert gov.counts[True] + gov.counts[False] == gov.steps == len(ran) and gov.deferred == 0


def test_the_governor_does_not_probe_the_split_while_the_machine_stays_busy():
    load = [2.0]
    gov = Governor(load=lambda: load[0], cpus=2)
    ran = []

    def run(steps):
        for _ in range(steps):
            split = gov.split_next()
            ran.append(split)
            gov.record(split, 100, 100 * (2.0 if split else 1.0))
    run(30)
    assert ran == [True] * 20 + [False] * 10 and not gov.best
    run(1000)
    assert ran[30:] == [False] * 1000 and gov.deferred >= 3       # every probe put off
    load[0] = 1.0                                                  # the other process ended
    run(260)
    assert True in ran[-260:]                                      # the split is probed again


@FORK
def test_trainer_that_adapts_follows_the_one_thread_run():
    x = _data(2000, 20, 1)
    runs = {}
    for th, adapt in ((1, False), (2, True)):
        vae = VAE(20, 4, hidden=(24,), activation="tanh", seed=3, dtype=np.float64)
        tr = Trainer(vae, x, None, TrainConfig(epochs=2, batch_size=64, seed=3, progress=False), speed=Speed(th,
                     adapt=adapt))
        tr.fit()
        runs[th] = (vae.flat_params.copy(), tr)
    np.testing.assert_allclose(runs[2][0], runs[1][0], rtol=1e-9, atol=1e-12)
    gov = runs[2][1].speed.governor
    assert gov.steps == 64 and gov.counts[False] >= 10      # at least the probe ran whole steps
    assert runs[1][1].speed.governor is None


@FORK
def test_closing_after_an_update_lets_the_child_finish_its_half():
    x = _data(100, 12, 6)
    a = VAE(12, 3, hidden=(10,), seed=6, dtype=np.float64)
    b = a.copy()
    oa, ob = BlockedAdam(1e-2), BlockedAdam(1e-2)
    with ProcessSplitStep(b, 100, 1) as split:
        split.step(x)
        a.flat_grads[...] = b.flat_grads
        assert split.update(ob)               # returns before the child's half is done
    oa.step(a.flat_params, a.flat_grads)
    assert np.array_equal(b.flat_params, a.flat_params) and np.array_equal(ob.v, oa.v)


def test_the_flat_buffers_can_be_given_and_must_fit():
    vae = VAE(6, 2, hidden=(5,), dtype=np.float64, seed=1)
    before = vae.flat_params.copy()
    n = before.size
    p, g = np.empty(n), np.full(n, 7.0)
    vae._bind_flat_buffers(p, g)
    assert vae.flat_params is p and vae.flat_grads is g and np.array_equal(p, before) and not g.any()
    assert np.shares_memory(vae.enc.linears[0].W, p) and np.shares_memory(vae.dec_out.db, g)
    with pytest.raises(ValueError, match=rf"flat_grads: expected shape \({n},\), got \({n + 1},\)"):
        vae._bind_flat_buffers(p, np.zeros(n + 1))


@FORK
def test_the_next_minibatch_made_while_the_child_works_changes_nothing(monkeypatch):
    """A process split makes fit's next minibatch (and its binarisation draw) while it waits for
    its child. Whether that happens depends on timing, so both extremes are forced here: the
    runs agree bit for bit, and the early making did happen in the one that allows it."""
    x = np.random.default_rng(1).random((420, 20))          # grey levels, binarised every step
    made = {"early": 0}
    runs = []
    from numpyvae.training import trainer as trainer_mod
    real = trainer_mod._Ahead._one

    def counted(self):
        got = real(self)
        made["early"] += len(got)
        return got
    monkeypatch.setattr(trainer_mod._Ahead, "_one", counted)
    for child_busy in (False, True):
        vae = VAE(20, 4, hidden=(24,), activation="tanh", seed=3, dtype=np.float64)
        tr = Trainer(vae, x, None, TrainConfig(epochs=2, batch_size=100, seed=3, binarize=True, progress=False),
                     speed=Speed(2))
        monkeypatch.setattr(parallel._Pipe, "poll", lambda self, busy=child_busy: not busy)
        made["early"] = 0
        tr.fit()
        runs.append((tr.history["train_loss"], vae.flat_params.copy(), made["early"]))
    assert runs[0][2] == 0 and runs[1][2] == 2 * 4     # 5 steps an epoch: 4 have a next one
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def _hold_a_split(report):
    """In a forked process: make a split step, say its child's pid, then wait to be killed."""
    vae = VAE(9, 3, hidden=(8,), dtype=np.float64)
    split = ProcessSplitStep(vae, 100, 1)
    split.step(_data(100, 9, 0))
    os.write(report, str(split.worker.proc.pid).encode())
    signal.pause()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"     # a zombie has ended
    except FileNotFoundError:
        return False


@FORK
def test_the_child_ends_when_its_parent_is_killed():
    """The child holds none of the parent's pipe ends, so a parent killed with SIGKILL (no
    clean-up runs) leaves it reading end-of-file, and it ends instead of waiting forever."""
    r, w = os.pipe()
    holder = multiprocessing.get_context("fork").Process(target=_hold_a_split, args=(w,))
    holder.start()
    os.close(w)
    child = int(os.read(r, 32))
    os.close(r)
    assert _alive(child)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    for _ in range(100):
        if not _alive(child):
            break
        time.sleep(0.05)
    outlived = _alive(child)
    if outlived:                # an orphan would hold this test run's output open: end it here
        os.kill(child, signal.SIGKILL)
    assert not outlived, "the split's child outlived its killed parent"


@FORK
@pytest.mark.parametrize("how", [signal.SIGSTOP, signal.SIGKILL])
def test_a_stopped_or_dead_worker_ends_the_run_on_its_last_epoch(tmp_path, capsys, monkeypatch, how):
    """The split's child stopped (SIGSTOP: it would never answer) or killed in epoch 2: the run
    ends in a few seconds with the usual lines (what is kept, how to continue), no traceback,
    and the printed command continues it."""
    from numpyvae.cli.main import main
    out = tmp_path / "run"
    real = Trainer._step

    def signal_the_child(self, xb, yb, beta, prepare=None):
        if self.epoch == 1 and self._session is not None and not hasattr(self, "_signalled"):
            self._signalled = True
            os.kill(self._session.split.worker.proc.pid, how)
        return real(self, xb, yb, beta, prepare)
    monkeypatch.setattr(Trainer, "_step", signal_the_child)
    t0 = time.perf_counter()
    code = main(["train", "--max-train", "400", "--hidden", "16", "--epochs", "3", "--threads", "2",
                 "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and time.perf_counter() - t0 < 60
    assert "Traceback" not in err and "training worker process" in err
    assert "the last finished epoch is kept" in err and "(epoch 1 of 3)" in err
    assert multiprocessing.active_children() == []
    command = err.split("to continue on one thread: ")[1].split()
    assert command[:3] == ["numpyvae", "train", "--resume"] and command[-2:] == ["--threads", "1"]
    monkeypatch.setattr(Trainer, "_step", real)
    assert main(command[1:] + ["--no-progress"]) == 0
    assert ck.load(out / "checkpoint.npz").epoch == 3


# ------------------------------------------------ the fused kernels inside a split step
@pytest.fixture
def fused():
    """numpyvae.speed.fused with its kernels on; the test skips where they cannot be (no numba,
    the 'fast' extra, or kernels that did not load)."""
    if __import__("importlib").util.find_spec("numba") is None:
        pytest.skip("numba is not installed (the 'fast' extra)")
    from numpyvae.speed import fused
    if not fused.available():
        pytest.skip(f"the fused kernels are off here: {fused.reason}")
    return fused


@pytest.mark.parametrize("kind", KINDS)
def test_a_split_of_a_fused_model_runs_every_part_fused_and_equals_the_plain_step(kind, monkeypatch, fused):
    """Each part's forward goes through the fused step (counted in shared memory, so the
    child's calls count too), and the split step's gradient is the plain one-thread step's."""
    calls = parallel._shared(1, np.int64)
    real = fused.fused_forward

    def counted(vae, *a, **kw):
        calls[0] += 1
        return real(vae, *a, **kw)
    monkeypatch.setattr(fused, "fused_forward", counted)
    x = _data(120, 30, 5)
    one = VAE(30, 4, hidden=(20, 16), activation="tanh", seed=5, dtype=np.float64)
    many = one.copy()
    t1 = one.forward(x)
    one.backward()
    assert fused.attach(many) and fused.attached(many) and not fused.attached(one)
    with _split(kind, many, 2, 120, 1) as split:
        if kind == "threads":               # (the child's replica is counted below)
            assert fused.attached(split.replicas[-1])
        t2 = split.step(x)
    assert calls[0] == 2                     # the parent's part and the other part, both fused
    np.testing.assert_allclose(many.flat_grads, one.flat_grads, rtol=1e-9, atol=1e-12)
    assert np.abs(one.flat_grads).max() > 0
    assert t2.loss == pytest.approx(t1.loss, rel=1e-12)


@FORK
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_process_split_fused_adam_is_the_one_process_fused_update_bit_for_bit(dtype, fused):
    """FusedAdam's update cut in halves across two processes (moments flushed after the
    kernel) equals its one-pass update with the flush inside the kernel, over the flush step."""
    x = _data(100, 12, 4)
    a = VAE(12, 3, hidden=(10,), activation="relu", seed=4, dtype=dtype)
    b = a.copy()
    oa, ob = fused.FusedAdam(1e-2, betas=(0.5, 0.9)), fused.FusedAdam(1e-2, betas=(0.5, 0.9))  # flush every 24
    plain = BlockedAdam(1e-2, betas=(0.5, 0.9))
    p_plain = a.flat_params.copy()
    thr = optim._tiny(dtype)                 # moments below it are zeroed at the flush (t = 24)
    with ProcessSplitStep(b, 100, 1) as split:
        for i in range(30):
            a.forward(x)
            a.backward()
            split.step(x)
            a.flat_grads[:40] = 0                 # forty parameters get no gradient: their moments decay
            b.flat_grads[...] = a.flat_grads      # the same gradient: the update alone is compared
            oa.step(a.flat_params, a.flat_grads)
            plain.step(p_plain, a.flat_grads)
            assert split.update(ob)
            split.wait()
            assert np.array_equal(b.flat_params, a.flat_params)
            assert np.array_equal(ob.m, oa.m) and np.array_equal(ob.v, oa.v)
            if i == 20:                           # near the flush threshold, three steps before it
                for o in (oa, ob, plain):
                    o.m[:40], o.v[:40] = 4 * thr, 1.2 * thr
    assert oa.t == ob.t == 30
    assert not np.any(ob.m[:40]) and not np.any(ob.v[:40])    # flushed (decay alone leaves them > 0)
    u = np.finfo(dtype).eps                  # and it is Adam: the blocked NumPy update to rounding
    np.testing.assert_allclose(a.flat_params, p_plain, rtol=0, atol=1e3 * u * np.abs(p_plain).max())


def test_cli_says_what_the_fused_kernels_do_and_trains_as_the_plain_step(tmp_path, capsys, monkeypatch, fused):
    """With the fast extra the command line says the kernels run (and where they came from);
    its run equals the same run with them switched off (Speed(fused=False)) to rounding."""
    from numpyvae.cli.main import main
    from numpyvae.training import checkpoint as ck
    args = ["train", "--max-train", "400", "--epochs", "1", "--hidden", "16", "--z-dim", "2", "--no-progress",
            "--batch-size", "100", "--threads", "1"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "fused kernels: the step's elementwise work and Adam, " in err
    assert any(f"{how} in " in err for how in ("loaded from the cache", "compiled for this machine",
                                              "compiled by numba in this process"))
    monkeypatch.setattr(Speed, "fused", property(lambda self: False))     # the extra switched off
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert "fused kernels" not in capsys.readouterr().err
    on, off = ck.load(tmp_path / "a" / "checkpoint.npz"), ck.load(tmp_path / "b" / "checkpoint.npz")
    for name, v in off.params.items():
        np.testing.assert_allclose(on.params[name], v, rtol=1e-4, atol=1e-5)   # float32 runs, 4 steps
        assert np.abs(v).max() > 0


def test_speed_without_the_split_runs_whole_steps_on_n_blas_threads(monkeypatch):
    """Speed(n, split=False): no split step is made (what the benchmarks weigh the split
    against), the BLAS gets n threads, and the run is the one-thread run's."""
    made = []
    monkeypatch.setattr("numpyvae.speed.make_split", lambda *a, **k: made.append(a) or None)
    seen = []
    from numpyvae.speed import threads as speed_threads
    orig = speed_threads.blas_threads

    def spy(n):
        seen.append(n)
        return orig(n)
    monkeypatch.setattr("numpyvae.speed.blas_threads", spy)
    x = _data(300, 20, 1)
    runs = []
    for speed in (Speed(1), Speed(2, split=False)):
        vae = VAE(20, 4, hidden=(24,), activation="tanh", seed=3, dtype=np.float64)
        tr = Trainer(vae, x, None, TrainConfig(epochs=2, batch_size=100, seed=3, progress=False), speed=speed)
        tr.fit()
        runs.append(vae.flat_params.copy())
    assert made == [] and seen == [1, 2]
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="split: expected True or False"):
        Speed(2, split="no")


@pytest.mark.parametrize("how", ["processes", "threads"])
def test_a_conv_vae_on_two_threads_follows_the_one_thread_run(how, monkeypatch):
    """The convolutional VAE splits like the MLP one (its layers share the flat buffer)."""
    from numpyvae import ConvVAE
    monkeypatch.setenv("NUMPYVAE_SPLIT", how)
    made = []
    real = make_split
    monkeypatch.setattr("numpyvae.speed.make_split", lambda *a, **k: made.append(type(a[0]).__name__) or real(*a, **k))
    x = _data(240, 49, 2)
    runs = {}
    for th in (1, 2):
        vae = ConvVAE((1, 7, 7), 3, channels=(2, 3), kernel_size=3, stride=2, padding=1, seed=3,
                      dtype=np.float64)
        tr = Trainer(vae, x, x[:40], TrainConfig(epochs=2, batch_size=80, seed=3, progress=False), speed=Speed(th))
        tr.fit()
        runs[th] = (vae.flat_params.copy(), tr.history)
    (p1, h1), (p2, h2) = runs[1], runs[2]
    assert made == ["ConvVAE"] and split_sizes(80, 1, 2) == [40, 40]      # the two-thread run split
    np.testing.assert_allclose(p2, p1, rtol=1e-9, atol=1e-12)
    assert np.abs(p1).max() > 0
    np.testing.assert_allclose(h2["train_loss"], h1["train_loss"], rtol=1e-10)
    np.testing.assert_allclose(h2["val_neg_elbo"], h1["val_neg_elbo"], rtol=1e-10)
