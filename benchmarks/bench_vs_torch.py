"""numpyvae's Trainer against a PyTorch VAE and against the matrix-multiply bound, in one run.

Three sides, each timed in its own subprocess (so its BLAS thread count is fixed before
NumPy or torch loads, and its peak RSS is its own):

* ``numpyvae``  -- ``numpyvae.training.trainer.Trainer.fit`` (the real training path: shuffle,
  minibatch copy, forward, backward, Adam), float32, with the command line's ``Speed(threads=N)``
  handed to ``Trainer``: at N = 2
  each minibatch is split in two, the second half in a child process, each on a one-thread
  BLAS, and Adam's update is split the same way (``numpyvae/speed/split.py``). Its
  peak RSS adds the child's private memory (read at each epoch's end) to the parent's peak;
* ``torch``     -- the pytorch/examples VAE as that example writes it (nn.Linear layers,
  sigmoid output with binary_cross_entropy summed over the batch, a DataLoader with
  shuffle=True, Adam, ``loss.item()`` every step); skipped with a note when torch is absent;
* ``matmul``    -- only the matrix products numpyvae's step performs (each Linear's forward,
  weight-gradient and, where needed, input-gradient product) for an epoch's batches: no
  NumPy implementation of the step can be faster, so numpyvae / matmul is its efficiency.

Two models (784-400-20 ReLU at B=128; 784-200-200-50 tanh at B=100) on random binary data
(held by both sides as float32, or with ``--storage bool`` as one byte a pixel, each minibatch
turned into float32: that is how torchvision holds MNIST, and how numpyvae's Trainer takes uint8
or bool data),
at each BLAS thread count asked for (threadpoolctl in the worker; OPENBLAS/OMP/MKL variables
set before import). Each run: one warm-up epoch, then ``--epochs`` timed epochs; the
settings are visited round-robin ``--rounds`` times and the median is reported, so a burst
of load from another process hits every side alike. The load average is printed with each
round: on a shared machine say so next to the numbers.

    python benchmarks/bench_vs_torch.py                       # the full protocol
    python benchmarks/bench_vs_torch.py --n 20000 --epochs 2 --rounds 3 --threads 1,2
    python benchmarks/bench_vs_torch.py --storage bool        # the data set held as bytes on both sides
    python benchmarks/bench_vs_torch.py --plain-adam          # also Trainer with the plain optim.Adam
    python benchmarks/bench_vs_torch.py --busy                # with another process spinning on a core
    python benchmarks/bench_vs_torch.py --busy --adapt        # and Speed(adapt=True), as --threads auto trains
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = {
    "relu": dict(label="784-400-20 ReLU, B=128", hidden=(400,), z_dim=20, activation="relu",
                 batch=128),
    "tanh": dict(label="784-200-200-50 tanh, B=100", hidden=(200, 200), z_dim=50,
                 activation="tanh", batch=100),
}
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _data(n, storage="float32", seed=0):
    """(n, 784) random 0/1 pixels stored as ``storage`` (float32: 4 bytes a pixel; bool: 1 byte),
    drawn in chunks of 4096 rows. Same values either way.

    The chunks' 12.8 MB temporaries matter to both sides' speed: glibc raises its mmap
    threshold when such a block is freed, so later 0.4 MB step temporaries come from the heap
    instead of fresh pages (PyTorch's one-thread ReLU run is 14% slower with 256-row chunks).
    They also leave about 17 MiB of freed heap resident in both processes. The issue's
    protocol was measured this way, so it stays."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = np.empty((n, 784), dtype=np.float32 if storage == "float32" else np.bool_)
    for i in range(0, n, 4096):
        x[i:i + 4096] = rng.random((min(4096, n - i), 784), dtype=np.float32) < 0.13
    return x


def _peak_rss_mb():
    """This process's peak resident set, MB: VmHWM belongs to the address space made at exec
    (getrusage's ru_maxrss would also count the parent's peak at fork time)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _children_private_mb():
    """Memory private to this process's children now, MB (Private_Clean + Private_Dirty of
    each): what numpyvae's split-step child adds; pages it shares with the parent (the data,
    copied on write and never written; the shared buffers) are already in the parent's RSS."""
    total = 0.0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids = f.read().split()
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    total += sum(int(line.split()[1]) for line in f
                                 if line.startswith(("Private_Clean:", "Private_Dirty:"))) / 1024.0
            except OSError:
                pass
    return total


# ------------------------------------------------------------------------------ workers
def run_numpyvae(m, n, epochs, threads, storage, fast_adam=True, adapt=False):
    import numpy as np
    from threadpoolctl import threadpool_limits
    sys.path.insert(0, ROOT)
    from numpyvae import VAE
    from numpyvae.speed import Speed
    from numpyvae.training.trainer import TrainConfig, Trainer

    x = _data(n, storage)         # bool: the Trainer turns each minibatch into float32 0/1
    with threadpool_limits(limits=threads, user_api="blas"):
        vae = VAE(784, m["z_dim"], hidden=m["hidden"], activation=m["activation"], seed=0,
                  dtype=np.float32)
        cfg = TrainConfig(epochs=1 + epochs, batch_size=m["batch"], progress=False)
        speed = Speed(threads, adapt=adapt)        # the command line's speed layer
        if not fast_adam:
            speed.optimizer = lambda opt: opt       # keep optim.Adam, the plain update
        tr = Trainer(vae, x, None, cfg, speed=speed)
        child = [0.0]        # the split step's child process, read at each epoch's end (while it lives)

        def watch(trainer, row):
            child[0] = max(child[0], _children_private_mb())
        tr.fit(1, callbacks=[watch])                 # warm-up epoch
        t0 = time.perf_counter()
        tr.fit(1 + epochs, callbacks=[watch])
        dt = time.perf_counter() - t0
    return dict(samples_per_s=n * epochs / dt, seconds=dt, final_loss=tr.history["train_loss"][-1],
                child_mb=child[0])


def run_torch(m, n, epochs, threads, storage, timer=None):
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    act = F.relu if m["activation"] == "relu" else torch.tanh

    class ExampleVAE(nn.Module):
        """The pytorch/examples VAE, with the hidden stack made a parameter."""

        def __init__(self, hidden, z_dim):
            super().__init__()
            sizes = (784,) + tuple(hidden)
            self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.fc_mu = nn.Linear(sizes[-1], z_dim)
            self.fc_logvar = nn.Linear(sizes[-1], z_dim)
            dsizes = (z_dim,) + tuple(hidden[::-1])
            self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dsizes[:-1], dsizes[1:]))
            self.fc_out = nn.Linear(dsizes[-1], 784)

        def encode(self, x):
            for lin in self.enc:
                x = act(lin(x))
            return self.fc_mu(x), self.fc_logvar(x)

        def decode(self, z):
            for lin in self.dec:
                z = act(lin(z))
            return torch.sigmoid(self.fc_out(z))

        def forward(self, x):
            mu, logvar = self.encode(x.view(-1, 784))
            std = torch.exp(0.5 * logvar)
            z = mu + std * torch.randn_like(std)
            return self.decode(z), mu, logvar

    def loss_fn(recon, x, mu, logvar):
        bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld

    x = torch.from_numpy(_data(n, storage))
    loader = DataLoader(TensorDataset(x), batch_size=m["batch"], shuffle=True)
    model = ExampleVAE(m["hidden"], m["z_dim"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch():
        model.train()
        total = 0.0
        for (xb,) in loader:
            xb = xb.float()      # bool storage: as torchvision's ToTensor makes floats of MNIST's bytes
            opt.zero_grad()
            recon, mu, logvar = model(xb)
            loss = loss_fn(recon, xb, mu, logvar)
            loss.backward()
            total += loss.item()
            opt.step()
        return total / n

    if timer is not None:            # bench_peers.py --paired: its clock, (wall, CPU) seconds
        dt, _ = timer(epoch, epochs)
        return dict(samples_per_s=n * epochs / dt, seconds=dt)
    epoch()                                          # warm-up epoch
    t0 = time.perf_counter()
    for _ in range(epochs):
        last = epoch()
    dt = time.perf_counter() - t0
    return dict(samples_per_s=n * epochs / dt, seconds=dt, final_loss=last)


def run_matmul(m, n, epochs, threads, timer=None):
    import numpy as np
    from threadpoolctl import threadpool_limits
    sys.path.insert(0, ROOT)
    from numpyvae import VAE

    B = m["batch"]
    vae = VAE(784, m["z_dim"], hidden=m["hidden"], activation=m["activation"], seed=0,
              dtype=np.float32)
    rng = np.random.default_rng(0)
    prods = []
    for _, lin in vae._named_linears():          # the step's products, shapes from its layers
        d_in, d_out = lin.W.shape
        a = rng.standard_normal((B, d_in), dtype=np.float32)
        dy = rng.standard_normal((B, d_out), dtype=np.float32)
        prods.append((a, lin.W, dy, np.empty_like(lin.W), lin.input_grad))
    steps = -(-n // B)

    def epoch():
        for _ in range(steps):
            for a, W, dy, dW, need_dx in prods:
                a @ W
                np.matmul(a.T, dy, out=dW)
                if need_dx:
                    dy @ W.T

    with threadpool_limits(limits=threads, user_api="blas"):
        if timer is not None:        # bench_peers.py --paired: its clock, (wall, CPU) seconds
            dt, cpu = timer(epoch, epochs)
            return dict(samples_per_s=n * epochs / dt, cpu_samples_per_s=n * epochs / cpu, seconds=dt)
        epoch()
        t0 = time.perf_counter()
        for _ in range(epochs):
            epoch()
        dt = time.perf_counter() - t0
    return dict(samples_per_s=n * epochs / dt, seconds=dt)


def worker(side, model, n, epochs, threads, storage):
    m = MODELS[model]
    if side == "torch":
        out = run_torch(m, n, epochs, threads, storage)
    elif side == "matmul":
        out = run_matmul(m, n, epochs, threads)
    else:
        out = run_numpyvae(m, n, epochs, threads, storage, fast_adam=(side != "numpyvae-plain-adam"),
                           adapt=(side == "numpyvae-adapt"))
    out["peak_rss_mb"] = _peak_rss_mb() + out.get("child_mb", 0.0)
    print(json.dumps(out))


# ------------------------------------------------------------------------------- driver
def _spawn(side, model, n, epochs, threads, storage):
    env = dict(os.environ)
    for v in THREAD_VARS:
        env[v] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, "--model", model,
           "--n", str(n), "--epochs", str(epochs), "--threads", str(threads), "--storage", storage]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _have_torch():
    try:
        import importlib.util
        return importlib.util.find_spec("torch") is not None
    except Exception:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60000, help="training examples per epoch")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after 1 warm-up)")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin repetitions (median)")
    ap.add_argument("--threads", default="1,2", help="comma-separated BLAS thread counts")
    ap.add_argument("--models", default="relu,tanh", help="comma-separated: relu, tanh")
    ap.add_argument("--plain-adam", action="store_true",
                    help="also time the Trainer with the readable Adam (optim.Adam, not speed.adam.BlockedAdam)")
    ap.add_argument("--adapt", action="store_true",
                    help="also Speed(adapt=True): whole steps instead of split ones while those measure faster")
    ap.add_argument("--storage", choices=("float32", "bool"), default="float32",
                    help="how both sides hold the data set: float32 (4 bytes a pixel, the default) or bool "
                         "(1 byte, as torchvision keeps MNIST's bytes); each minibatch becomes float32")
    ap.add_argument("--no-torch", action="store_true", help="leave the PyTorch side out")
    ap.add_argument("--json", help="write all samples to this file")
    ap.add_argument("--busy", action="store_true",
                    help="keep one other process spinning on a core for the whole run (a busy machine)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.model, args.n, args.epochs, int(args.threads), args.storage)
        return

    threads = [int(t) for t in args.threads.split(",")]
    models = args.models.split(",")
    sides = (["numpyvae"] + (["numpyvae-plain-adam"] if args.plain_adam else [])
             + (["numpyvae-adapt"] if args.adapt else []))
    if args.no_torch:
        torch_note = "PyTorch side left out (--no-torch)"
    elif _have_torch():
        from importlib.metadata import version
        sides.append("torch")
        torch_note = f"torch {version('torch')}"    # not imported here: keeps the parent small
    else:
        torch_note = "torch is not installed: the PyTorch side is skipped (pip install torch)"
    sides.append("matmul")
    import numpy as np
    print(f"numpyvae vs PyTorch vs matmul bound: {args.n} random binary examples/epoch ({args.storage}), "
          f"1 warm-up + {args.epochs} timed epochs, median of {args.rounds} rounds round-robin")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {torch_note}, "
          f"cpus {os.cpu_count()}")
    with busy_core(args.busy):
        samples, loads = _rounds(args, models, threads, sides)
    _report(args, models, threads, sides, samples, loads)


@contextlib.contextmanager
def busy_core(busy=True):
    """With ``busy``, another process spinning on a core for the duration (a busy machine)."""
    if not busy:
        yield
        return
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    print(f"busy: another process (pid {hog.pid}) spins on one core for the whole run")
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def _rounds(args, models, threads, sides):
    samples = {}
    loads = []
    for r in range(args.rounds):
        la0 = os.getloadavg()
        for model in models:
            for t in threads:
                for side in sides:
                    out = _spawn(side, model, args.n, args.epochs, t, args.storage)
                    samples.setdefault((model, t, side), []).append(out)
                    print(f"  {MODELS[model]['label']:<28} {t} thr {side:<20} "
                          f"{out['samples_per_s']:8.0f} samples/s  {out['peak_rss_mb']:5.0f} MB  "
                          f"load {os.getloadavg()[0]:.2f}", flush=True)
        la1 = os.getloadavg()
        loads.append((la0, la1))
        print(f"round {r + 1}/{args.rounds} done; load average (1, 5, 15 min) before "
              f"{la0[0]:.2f} {la0[1]:.2f} {la0[2]:.2f}, after {la1[0]:.2f} {la1[1]:.2f} {la1[2]:.2f}",
              flush=True)
    return samples, loads


def _report(args, models, threads, sides, samples, loads):
    if "torch" not in sides:
        sides.append("torch")           # ratios against it print as nan
        for model in models:
            for t in threads:
                samples[(model, t, "torch")] = [dict(samples_per_s=float("nan"), peak_rss_mb=float("nan"))]

    def med(model, t, side, key="samples_per_s"):
        s = samples.get((model, t, side))
        return statistics.median(o[key] for o in s) if s else float("nan")

    print()
    head = f"{'model':<28} {'thr':>3} {'side':<20} {'samples/s':>10} {'min-max':>15} {'peak RSS MB':>11}"
    print(head)
    print("-" * len(head))
    for model in models:
        for t in threads:
            for side in sides:
                s = [o["samples_per_s"] for o in samples[(model, t, side)]]
                print(f"{MODELS[model]['label']:<28} {t:>3} {side:<20} {med(model, t, side):>10.0f} "
                      f"{min(s):>7.0f}-{max(s):<7.0f} {med(model, t, side, 'peak_rss_mb'):>11.0f}")
    print()
    print(f"{'model':<28} {'thr':>3} {'numpyvae/torch':>14} {'numpyvae/matmul':>15} "
          f"{'RSS numpyvae/torch':>18}" + ("  fast/plain Adam" if args.plain_adam else ""))
    for model in models:
        for t in threads:
            nv_ = med(model, t, "numpyvae")
            line = (f"{MODELS[model]['label']:<28} {t:>3} {nv_ / med(model, t, 'torch'):>14.2f} "
                    f"{nv_ / med(model, t, 'matmul'):>15.2f} "
                    f"{med(model, t, 'numpyvae', 'peak_rss_mb') / med(model, t, 'torch', 'peak_rss_mb'):>18.3f}")
            if args.plain_adam:
                line += f"  {nv_ / med(model, t, 'numpyvae-plain-adam'):>16.2f}"
            print(line)
    if len(threads) > 1:
        print()
        for model in models:
            for side in sides:
                v = [med(model, t, side) for t in threads]
                print(f"{MODELS[model]['label']:<28} {side:<20} samples/s by threads "
                      + ", ".join(f"{t}: {x:.0f}" for t, x in zip(threads, v)))
    print("\nload average over the run (1-min, before/after each round): "
          + "; ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in loads))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "loads": loads,
                       "samples": {"|".join(map(str, k)): v for k, v in samples.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
