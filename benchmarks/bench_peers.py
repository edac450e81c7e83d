"""numpyvae's training path, with and without the fused kernels, against JAX and PyTorch.

Sides, each timed in its own subprocess (its BLAS thread count set before NumPy, torch or
jax loads), on the two models of ``bench_vs_torch.py`` and its random binary data:

* ``numpyvae``        -- ``Trainer.fit`` with the command line's speed layer,
  ``Speed(threads=N, fused=False)``: what ``numpyvae train`` runs without the ``fast`` extra;
* ``numpyvae-fused``  -- the same with ``Speed(threads=N, fused=True)``: the fused kernels of
  ``numpyvae.speed.fused`` (what it runs with the extra); skipped with a note without numba;
* ``numpyvae-fused-nosplit`` -- at N >= 2 threads only: the fused step without the split,
  ``Speed(threads=N, fused=True, split=False)``: whole steps on an N-thread BLAS, the simpler
  design the split is weighed against;
* ``numpyvae-fused-auto`` -- at N >= 2 threads only: the split with ``Speed(adapt=True)``, as
  ``numpyvae train --threads auto`` runs it: whole one-thread steps while they measure faster
  (with ``--busy``, another process spinning on a core, that is where it differs);
* ``jax``             -- the same model, loss and Adam in one ``jax.jit`` step (forward, grad,
  Adam written out), float32, minibatches gathered by index; skipped with a note without jax;
  at N >= 2 threads XLA's products use N threads;
* ``jax-async``       -- at N >= 2 threads only: the same, with XLA's products on one thread and
  Python's dispatch of the next step running on another core meanwhile (JAX's asynchronous
  dispatch), which on 2 cores beats XLA's own threading; the ratios use the faster JAX side;
* ``torch-careful``   -- PyTorch eager written for speed: one Linear for both encoder heads,
  ``binary_cross_entropy_with_logits``, minibatches by index (no DataLoader), ``Adam(foreach)``,
  no ``.item()`` inside the epoch; skipped with a note without torch;
* ``torch``           -- ``bench_vs_torch.run_torch``, the pytorch/examples VAE as written;
* ``matmul``          -- ``bench_vs_torch.run_matmul``: the step's matrix products alone (the bound).

At one thread every side runs pinned to one CPU (``os.sched_setaffinity``): a side's helper
threads (JAX's dispatch, a BLAS pool) cannot borrow the second core, so "one thread" means one
core for all of them. Each run: one warm-up epoch (it also pays JAX's and numba's compile), then ``--epochs`` timed
epochs; numpyvae's sides train them all in one ``Trainer.fit``, as ``numpyvae train`` does (one
split child for the whole run, a checkpoint and a history row written at every epoch's end, in
a temporary folder), timed from the warm-up epoch's end to the last epoch's. Sides
are visited round-robin ``--rounds`` times, median reported. Two rates are printed:
samples per second of wall time, and, at one thread, samples per second of the process's CPU
time, which a loaded machine disturbs less (a side waiting for a core is not charged for it).
Peak memory is each process's peak resident set, plus what the split's child process holds
privately. Compile time is reported on its own: numba's (``fused.warm_up()``, from its cache after the
first run) and the first JAX step's.

On a shared machine the rate of one side can change by a third from one minute to the next, and
a ratio of two medians taken minutes apart inherits that. ``--paired`` measures ratios another
way: every side is started and warmed up at once, then in each of ``--rounds`` rounds each side
in turn trains one epoch while the others wait (A B C, then C B A, ...), and each ratio is taken
round by round, between epochs run seconds apart. It reports the median ratio, its range and
in how many rounds the first side was ahead; ``--epochs`` is not used.

    python benchmarks/bench_peers.py                                  # 60,000 examples, 3 epochs, 3 rounds
    python benchmarks/bench_peers.py --n 8192 --epochs 1 --rounds 1   # small, on a busy machine
    python benchmarks/bench_peers.py --paired --n 30000 --rounds 15 \
        --sides numpyvae-fused,jax,jax-async,torch-careful,matmul
    python benchmarks/bench_peers.py --paired --busy --threads 2 --n 20000 --rounds 5 \
        --sides numpyvae-fused,numpyvae-fused-auto,numpyvae-fused-nosplit
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_vs_torch import (  # noqa: E402
    MODELS,
    THREAD_VARS,
    _children_private_mb,
    _data,
    _peak_rss_mb,
    busy_core,
    run_matmul,
    run_torch,
)

SIDES = ("numpyvae", "numpyvae-fused", "numpyvae-fused-nosplit", "numpyvae-fused-auto", "jax", "jax-async",
         "torch-careful", "torch", "matmul")
NEEDS = {"numpyvae-fused": "numba", "numpyvae-fused-nosplit": "numba", "numpyvae-fused-auto": "numba",
         "jax": "jax", "jax-async": "jax", "torch-careful": "torch", "torch": "torch"}
#: sides that exist at two threads or more only
TWO_THREADS = ("jax-async", "numpyvae-fused-nosplit", "numpyvae-fused-auto")


def _timed(epoch, epochs):
    """(wall seconds, CPU seconds) of ``epochs`` calls of ``epoch`` after one warm-up call."""
    epoch()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        epoch()
    return time.perf_counter() - t0, time.process_time() - c0


# ------------------------------------------------------- --paired: the worker's side of it
def _tell(**msg):
    """One message to the driver: a JSON line on standard output."""
    print(json.dumps(msg), flush=True)


def _await_go():
    """Block until the driver writes "go" (its turn has come); exit if the driver is gone."""
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("bench_peers worker: the driver went away")


def _served(epoch, epochs):
    """``_timed`` for a paired run: one warm-up call, then each of the ``epochs`` timed calls
    waits for the driver's "go" and reports its own (wall, CPU) seconds at once; returns their
    sums."""
    epoch()                                               # warm-up (and compile)
    _tell(ready=True)
    wall = cpu = 0.0
    for _ in range(epochs):
        _await_go()
        t0, c0 = time.perf_counter(), time.process_time()
        epoch()
        w, c = time.perf_counter() - t0, time.process_time() - c0
        _tell(wall=w, cpu=c)
        wall, cpu = wall + w, cpu + c
    return wall, cpu


# ------------------------------------------------------------------------------ numpyvae
def run_numpyvae(m, n, epochs, threads, fused_path, split=True, paired=False, adapt=False):
    import numpy as np
    from threadpoolctl import threadpool_limits
    sys.path.insert(0, ROOT)
    from numpyvae import VAE
    from numpyvae.optim import Adam
    from numpyvae.speed import Speed
    from numpyvae.training.trainer import TrainConfig, Trainer

    x = _data(n)
    compile_s = 0.0
    if fused_path:
        from numpyvae.speed import fused
        compile_s = fused.warm_up()
        if not fused.available():
            raise RuntimeError(f"the fused path is off: {fused.reason}")
    with tempfile.TemporaryDirectory(prefix="bench_peers.") as run, \
            threadpool_limits(limits=threads, user_api="blas"):
        vae = VAE(784, m["z_dim"], hidden=m["hidden"], activation=m["activation"], seed=0,
                  dtype=np.float32)
        speed = Speed(threads, fused=fused_path, split=split, adapt=adapt)   # the command line's speed layer
        tr = Trainer(vae, x, None, TrainConfig(epochs=1 + epochs, batch_size=m["batch"], progress=False),
                     optimizer=Adam(1e-3), speed=speed,
                     checkpoint_path=os.path.join(run, "checkpoint.npz"),    # as the command line does
                     history_path=os.path.join(run, "history.csv"))

        # one fit over every epoch, as the command line runs it (one split child for the whole
        # run); the clock starts at the warm-up epoch's end and stops at the last epoch's
        child, marks, spent = [0.0], [], [0.0, 0.0]

        def watch(trainer, row):
            now = (time.perf_counter(), time.process_time())
            child[0] = max(child[0], _children_private_mb())     # the split's child, while it lives
            if paired:       # --paired: report the epoch just ended, then wait for this side's turn
                if marks:
                    w, c = now[0] - marks[-1][0], now[1] - marks[-1][1]
                    spent[0], spent[1] = spent[0] + w, spent[1] + c
                    _tell(wall=w, cpu=c)
                else:
                    _tell(ready=True)
                if trainer.epoch < 1 + epochs:
                    _await_go()
                    now = (time.perf_counter(), time.process_time())
            marks.append(now)

        tr.fit(1 + epochs, callbacks=[watch])
        if paired:        # the epochs alone, without the waits between them
            wall, cpu = spent
        else:
            wall, cpu = marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]
    return dict(samples_per_s=n * epochs / wall, cpu_samples_per_s=n * epochs / cpu,
                compile_s=compile_s, final_loss=tr.history["train_loss"][-1], child_mb=child[0])


# ------------------------------------------------------------------------------- JAX
def run_jax(m, n, epochs, threads, one_op_thread=False, timer=_timed):
    if threads == 1 or one_op_thread:     # XLA's CPU backend otherwise uses every core for its products
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    import jax
    import jax.numpy as jnp
    import numpy as np

    B, Z, hidden = m["batch"], m["z_dim"], m["hidden"]
    act = jax.nn.relu if m["activation"] == "relu" else jnp.tanh
    key = jax.random.PRNGKey(0)

    def linear(k, a, b):
        bound = 1.0 / np.sqrt(a)            # PyTorch's default, as numpyvae's init="uniform"
        k1, k2 = jax.random.split(k)
        return (jax.random.uniform(k1, (a, b), jnp.float32, -bound, bound),
                jax.random.uniform(k2, (b,), jnp.float32, -bound, bound))

    sizes = (784,) + tuple(hidden)
    dsizes = (Z,) + tuple(hidden[::-1])
    keys = iter(jax.random.split(key, 16))
    params = dict(enc=[linear(next(keys), a, b) for a, b in zip(sizes[:-1], sizes[1:])],
                  head=linear(next(keys), sizes[-1], 2 * Z),        # mu and logvar in one product
                  dec=[linear(next(keys), a, b) for a, b in zip(dsizes[:-1], dsizes[1:])],
                  out=linear(next(keys), dsizes[-1], 784))

    def loss_fn(p, x, eps):
        h = x
        for W, b in p["enc"]:
            h = act(h @ W + b)
        q = h @ p["head"][0] + p["head"][1]
        mu, logvar = q[:, :Z], q[:, Z:]
        z = mu + jnp.exp(0.5 * logvar) * eps
        for W, b in p["dec"]:
            z = act(z @ W + b)
        logits = z @ p["out"][0] + p["out"][1]
        logp = jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)
        kl = 0.5 * jnp.sum(mu * mu + jnp.expm1(logvar) - logvar, axis=-1)
        return jnp.mean(kl - logp)

    b1, b2, lr, eps_adam = 0.9, 0.999, 1e-3, 1e-8

    @jax.jit
    def step(p, mom, vel, t, x, key):
        key, sub = jax.random.split(key)
        eps = jax.random.normal(sub, (x.shape[0], Z), jnp.float32)
        loss, g = jax.value_and_grad(loss_fn)(p, x, eps)
        mom = jax.tree_util.tree_map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, mom, g)
        vel = jax.tree_util.tree_map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, vel, g)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        p = jax.tree_util.tree_map(lambda p_, m_, v_: p_ - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps_adam),
                                   p, mom, vel)
        return p, mom, vel, loss, key

    x = jnp.asarray(_data(n))
    mom = jax.tree_util.tree_map(jnp.zeros_like, params)
    vel = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = dict(p=params, m=mom, v=vel, t=0, key=jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    out = step(state["p"], state["m"], state["v"], 1.0, x[:B], state["key"])
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0

    def epoch():
        order = rng.permutation(n)
        loss = None
        for i in range(0, n - B + 1, B):        # whole batches: one compiled shape
            state["t"] += 1
            state["p"], state["m"], state["v"], loss, state["key"] = step(
                state["p"], state["m"], state["v"], float(state["t"]), x[order[i:i + B]], state["key"])
        state["loss"] = float(loss)
    wall, cpu = timer(epoch, epochs)
    return dict(samples_per_s=n * epochs / wall, cpu_samples_per_s=n * epochs / cpu,
                compile_s=compile_s, final_loss=state["loss"] * 1.0)


# ---------------------------------------------------------------------- PyTorch, careful
def run_torch_careful(m, n, epochs, threads, timer=_timed):
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    Z = m["z_dim"]
    act = nn.ReLU() if m["activation"] == "relu" else nn.Tanh()
    sizes = (784,) + tuple(m["hidden"])
    dsizes = (Z,) + tuple(m["hidden"][::-1])
    enc = nn.Sequential(*[mod for a, b in zip(sizes[:-1], sizes[1:]) for mod in (nn.Linear(a, b), act)])
    head = nn.Linear(sizes[-1], 2 * Z)                                   # mu and logvar in one product
    dec = nn.Sequential(*[mod for a, b in zip(dsizes[:-1], dsizes[1:]) for mod in (nn.Linear(a, b), act)],
                        nn.Linear(dsizes[-1], 784))
    params = [*enc.parameters(), *head.parameters(), *dec.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, foreach=True)
    x = torch.from_numpy(_data(n))
    B = m["batch"]

    def epoch():
        order = torch.randperm(n)
        total = torch.zeros(())
        for i in range(0, n, B):
            xb = x[order[i:i + B]]
            mu, logvar = head(enc(xb)).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            rec = F.binary_cross_entropy_with_logits(dec(z), xb, reduction="sum")
            kl = 0.5 * torch.sum(mu * mu + torch.expm1(logvar) - logvar)
            loss = (rec + kl) / xb.shape[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        return float(total) * B / n
    wall, cpu = timer(epoch, epochs)
    return dict(samples_per_s=n * epochs / wall, cpu_samples_per_s=n * epochs / cpu, compile_s=0.0)


# ----------------------------------------------------------------------------- driver
def worker(side, model, n, epochs, threads, paired=False):
    m = MODELS[model]
    timer = _served if paired else _timed
    if threads == 1 and hasattr(os, "sched_setaffinity"):     # one thread = one core, every side
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if side == "matmul":           # imports before the clock: only the products' CPU time counts
        import numpy  # noqa: F401
        import threadpoolctl  # noqa: F401

        import numpyvae  # noqa: F401
    c0 = time.process_time()
    if side.startswith("numpyvae"):
        out = run_numpyvae(m, n, epochs, threads, side != "numpyvae", split=not side.endswith("nosplit"),
                           paired=paired, adapt=side.endswith("auto"))
    elif side in ("jax", "jax-async"):
        out = run_jax(m, n, epochs, threads, one_op_thread=side == "jax-async", timer=timer)
    elif side == "torch-careful":
        out = run_torch_careful(m, n, epochs, threads, timer=timer)
    elif side == "torch":
        out = run_torch(m, n, epochs, threads, "float32", timer=_served if paired else None)  # wall only
    else:
        out = run_matmul(m, n, epochs, threads, timer=_served if paired else None)
        if not paired:
            # CPU seconds of the whole call: the model's construction (small) and the warm-up epoch too
            out["cpu_samples_per_s"] = n * (epochs + 1) / max(time.process_time() - c0, 1e-9)
    out["peak_rss_mb"] = _peak_rss_mb() + out.get("child_mb", 0.0)     # with the split's child
    print(json.dumps(out))


def _worker_command(side, model, n, epochs, threads, paired=False):
    """(argv, environment) of a worker process, its BLAS thread count set before anything loads."""
    env = dict(os.environ)
    for v in THREAD_VARS:
        env[v] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, "--model", model,
           "--n", str(n), "--epochs", str(epochs), "--threads", str(threads)] + (["--paired"] if paired else [])
    return cmd, env


def _spawn(side, model, n, epochs, threads):
    cmd, env = _worker_command(side, model, n, epochs, threads)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------- --paired: the driver's side of it
def _start(side, model, n, epochs, threads):
    """A worker that times one epoch each time it is told "go" (``_served``)."""
    cmd, env = _worker_command(side, model, n, epochs, threads, paired=True)
    # its error output to a file: a pipe nobody reads would stop it once full
    return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=tempfile.TemporaryFile(mode="w+"), text=True)


def _expect(side, proc, key):
    """The worker's next message holding ``key``; its error output if it ended first."""
    for line in proc.stdout:
        if line.startswith("{"):
            msg = json.loads(line)
            if key in msg:
                return msg
    proc.wait()
    proc.stderr.seek(0)
    raise RuntimeError(f"{side} worker failed (exit code {proc.returncode}):\n{proc.stderr.read()[-2000:]}")


def _paired(model, threads, sides, n, rounds):
    """Every side started and warmed up at once; then ``rounds`` rounds in which each side in
    turn trains one epoch while the others wait, in alternating order (A B C, C B A, ...).
    Two sides' rates in one round were measured seconds apart, and a round costs one epoch a
    side (no new process, warm-up or compile), so a run can afford many rounds.
    Returns ({side: [{"wall": /s, "cpu": /s} a round]}, {side: final})."""
    procs = {}
    try:
        for s in sides:
            procs[s] = _start(s, model, n, rounds, threads)
        for s in sides:
            _expect(s, procs[s], "ready")
        rates = {s: [] for s in sides}
        for r in range(rounds):
            for s in (sides if r % 2 == 0 else sides[::-1]):
                procs[s].stdin.write("go\n")
                procs[s].stdin.flush()
                msg = _expect(s, procs[s], "wall")
                rates[s].append({"wall": n / msg["wall"], "cpu": n / msg["cpu"]})
        final = {s: _expect(s, procs[s], "samples_per_s") for s in sides}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return rates, final


#: the ratios a paired run reports, each round by round
PAIRS = (("numpyvae-fused", "jax"), ("numpyvae-fused", "torch-careful"), ("numpyvae-fused", "torch"),
         ("numpyvae-fused", "matmul"), ("numpyvae-fused", "numpyvae"), ("numpyvae-fused", "numpyvae-fused-nosplit"),
         ("numpyvae-fused-auto", "jax"), ("numpyvae-fused-auto", "numpyvae-fused"),
         ("numpyvae-fused-auto", "numpyvae-fused-nosplit"),
         ("numpyvae", "jax"), ("numpyvae", "matmul"))


def _paired_report(model, t, rates, final, n, rounds):
    print(f"\n{MODELS[model]['label']}, {t} thread(s): {rounds} rounds, each side one epoch of {n} "
          f"examples a round, load {os.getloadavg()[0]:.2f}")
    print(f"  {'side':<24} {'wall /s: median':>15} {'(min-max)':>15} {'CPU /s':>8} {'RSS MB':>7}")
    for s, rs in rates.items():
        w = [r["wall"] for r in rs]
        print(f"  {s:<24} {statistics.median(w):>15.0f} {f'({min(w):.0f}-{max(w):.0f})':>15} "
              f"{statistics.median(r['cpu'] for r in rs):>8.0f} {final[s]['peak_rss_mb']:>7.0f}")
    series = {s: [r["wall"] for r in rs] for s, rs in rates.items()}
    cpu = {s: [r["cpu"] for r in rs] for s, rs in rates.items()}
    if "jax" in series and "jax-async" in series:       # the faster JAX, round by round
        sync = [a >= b for a, b in zip(series["jax"], series["jax-async"])]
        cpu["jax"] = [c if f else d for f, c, d in zip(sync, cpu["jax"], cpu["jax-async"])]
        series["jax"] = [max(a, b) for a, b in zip(series["jax"], series["jax-async"])]
    elif "jax-async" in series:
        series["jax"], cpu["jax"] = series["jax-async"], cpu["jax-async"]
    print("  round-by-round ratios, wall (at one thread also CPU): median (min-max), rounds ahead"
          + ("; jax: the faster of jax and jax-async in each round" if "jax-async" in rates else ""))
    for a, b in PAIRS:
        if a in series and b in series:
            r = [x / y for x, y in zip(series[a], series[b])]
            line = (f"    {a}/{b}: {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f}), "
                    f"ahead in {sum(x > 1 for x in r)} of {len(r)}")
            if t == 1:
                rc = [x / y for x, y in zip(cpu[a], cpu[b])]
                line += f"; CPU {statistics.median(rc):.2f} ({min(rc):.2f}-{max(rc):.2f})"
            print(line)


def _present(side):
    need = NEEDS.get(side)
    return need is None or importlib.util.find_spec(need) is not None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60000, help="training examples per epoch")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after 1 warm-up)")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin repetitions (median)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--models", default="relu,tanh", help="comma-separated: relu, tanh")
    ap.add_argument("--sides", default=",".join(SIDES), help="comma-separated, from: " + ", ".join(SIDES))
    ap.add_argument("--paired", action="store_true",
                    help="keep every side running and alternate one epoch of each, --rounds times; "
                         "report the ratios round by round")
    ap.add_argument("--busy", action="store_true",
                    help="keep one other process spinning on a core for the whole run (a busy machine)")
    ap.add_argument("--json", help="write all samples to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.model, args.n, args.epochs, int(args.threads), args.paired)
        return
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        ap.error(f"--threads: expected comma-separated positive integers, got {args.threads!r}")
    models, asked = args.models.split(","), args.sides.split(",")
    for name, given, known in (("--models", models, MODELS), ("--sides", asked, SIDES)):
        bad = [g for g in given if g not in known]
        if bad:
            ap.error(f"{name}: expected names from {sorted(known)}, got {bad}")
    if args.n < 1 or args.epochs < 1 or args.rounds < 1 or min(threads) < 1:
        ap.error("--n, --epochs, --rounds and --threads: expected positive integers")
    sides = [s for s in asked if _present(s)]
    for s in asked:
        if s not in sides:
            print(f"note: {s} is skipped: {NEEDS[s]} is not installed")
    with busy_core(args.busy):
        if args.paired:
            _paired_main(args, models, threads, sides)
        else:
            _round_robin(args, models, threads, sides)


def _round_robin(args, models, threads, sides):
    print(f"peers: {args.n} random binary examples/epoch, 1 warm-up + {args.epochs} timed epochs, "
          f"median of {args.rounds} round(s); cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    samples, loads = {}, []
    for _ in range(args.rounds):
        la0 = os.getloadavg()[0]
        for model in models:
            for t in threads:
                for side in sides:
                    if side in TWO_THREADS and t == 1:
                        continue          # at one core it is the "jax" side; nothing to split
                    out = _spawn(side, model, args.n, args.epochs, t)
                    samples.setdefault((model, t, side), []).append(out)
                    print(f"  {MODELS[model]['label']:<28} {t} thr {side:<22} {out['samples_per_s']:8.0f} /s wall "
                          f"{out.get('cpu_samples_per_s', float('nan')):8.0f} /s CPU  {out['peak_rss_mb']:5.0f} MB  "
                          f"compile {out.get('compile_s', 0.0):.2f} s  load {os.getloadavg()[0]:.2f}", flush=True)
        loads.append((la0, os.getloadavg()[0]))
    _report(models, threads, sides, samples, loads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "loads": loads,
                       "samples": {"|".join(map(str, k)): v for k, v in samples.items()}}, f, indent=1)


def _paired_main(args, models, threads, sides):
    print(f"peers, paired: {args.n} random binary examples an epoch, 1 warm-up epoch, then {args.rounds} "
          f"rounds of one epoch a side; cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}", flush=True)
    out = {}
    for model in models:
        for t in threads:
            here = [s for s in sides if not (t == 1 and s in TWO_THREADS)]
            rates, final = _paired(model, t, here, args.n, args.rounds)
            _paired_report(model, t, rates, final, args.n, args.rounds)
            out[f"{model}|{t}"] = {"rates": rates, "final": final}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "paired": out}, f, indent=1)


def _report(models, threads, sides, samples, loads):
    def med(model, t, side, key="samples_per_s"):
        s = samples.get((model, t, side))
        return statistics.median(o.get(key, float("nan")) for o in s) if s else float("nan")

    print(f"\n{'model':<28} {'thr':>3} {'side':<22} {'wall /s':>8} {'CPU /s':>8} {'RSS MB':>7} {'compile s':>9}")
    for model in models:
        for t in threads:
            for side in sides:
                if (model, t, side) not in samples:
                    continue
                print(f"{MODELS[model]['label']:<28} {t:>3} {side:<22} {med(model, t, side):>8.0f} "
                      f"{med(model, t, side, 'cpu_samples_per_s'):>8.0f} {med(model, t, side, 'peak_rss_mb'):>7.0f} "
                      f"{med(model, t, side, 'compile_s'):>9.2f}")
    print("\nratios (wall; at one thread also CPU; jax: the faster of jax and jax-async):")
    for model in models:
        for t in threads:
            base = {s: med(model, t, s) for s in sides if (model, t, s) in samples}
            cpu = {s: med(model, t, s, "cpu_samples_per_s") for s in base}
            if "jax-async" in base and base["jax-async"] > base.get("jax", 0):
                base["jax"], cpu["jax"] = base["jax-async"], cpu["jax-async"]      # the faster JAX
            parts = []
            for a, b in (("numpyvae-fused", "numpyvae"), ("numpyvae-fused", "numpyvae-fused-nosplit"),
                         ("numpyvae-fused-auto", "numpyvae-fused-nosplit"),
                         ("numpyvae-fused", "jax"), ("numpyvae-fused", "torch-careful"),
                         ("numpyvae", "jax"), ("numpyvae-fused", "matmul"), ("numpyvae", "matmul")):
                if a in base and b in base:
                    parts.append(f"{a}/{b} {base[a] / base[b]:.2f}" + (f" ({cpu[a] / cpu[b]:.2f})" if t == 1 else ""))
            for b in ("torch", "torch-careful"):
                if "numpyvae-fused" in base and b in base:
                    rss = med(model, t, "numpyvae-fused", "peak_rss_mb") / med(model, t, b, "peak_rss_mb")
                    parts.append(f"peak RSS numpyvae-fused/{b} {rss:.2f}")
            print(f"  {MODELS[model]['label']:<28} {t} thr: " + "; ".join(parts))
    print("load average (1 min) before/after each round: " + "; ".join(f"{a:.2f}/{b:.2f}" for a, b in loads))


if __name__ == "__main__":
    main()
