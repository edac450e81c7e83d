"""The convolutional VAE measured: its quality against the MLP VAE, its speed against PyTorch.

Three parts (``--parts``, default all):

* ``quality``: Larochelle's binarized MNIST, the MLP VAE (784-400-20 ReLU) and the ConvVAE
  (convolutions 1->32->64, kernel 4, stride 2, padding 1, z = 20, the mirror image in the
  decoder) trained by the same ``Trainer`` with the same settings (batch 100, Adam 1e-3, equal
  epochs) for each seed, then scored by the same code: test -ELBO
  (``training.trainer.evaluate``) and -log p(x) (``theory.estimators.log_likelihood``, K = 1000
  importance samples, on the first ``--n-ll`` test images, with the -ELBO on those same images
  beside it: the first images of the test set are not an average sample of it). Printed side
  by side per seed, then mean +- standard deviation, with the seconds per epoch.
* ``speed``: one training step of the ConvVAE (``Trainer.train_step``, float32, B = 100) against
  the same architecture written in PyTorch as a user would (nn.Conv2d, nn.ConvTranspose2d,
  nn.Linear, BCE with logits, Adam), at one and at two threads, each side in its own process;
  the ratio printed is PyTorch's time over numpyvae's (1.0: as fast; the target is 0.8 at one
  thread). Skipped with a note when torch is absent.
* ``parts``: the numpyvae step taken apart on one thread, as bench_step_parts.py does for the
  MLP: each piece timed inside real steps (the layers, and inside them the im2col copies and
  col2im adds; the likelihood, the objective's other pieces, Adam), and the step's matrix
  products alone on the same shapes, so what is not a product is visible.

    python benchmarks/bench_conv.py --parts speed,parts
    python benchmarks/bench_conv.py --parts quality --seeds 0,1,2 --epochs 10
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DATA = "/work/shared/data/binarized-mnist"
CONV = dict(image_shape=(1, 28, 28), z_dim=20, channels=(32, 64), kernel_size=4, stride=2,
            padding=1)


def _binary(n, seed=0):
    import numpy as np
    return (np.random.default_rng(seed).random((n, 784), dtype=np.float32) < 0.13).astype(np.float32)


# ------------------------------------------------------------------------------ quality
def quality(args):
    import numpy as np

    sys.path.insert(0, ROOT)
    from numpyvae import VAE
    from numpyvae.conv import ConvVAE
    from numpyvae.data.formats import load_binarized_mnist
    from numpyvae.theory.estimators import log_likelihood
    from numpyvae.training.trainer import TrainConfig, Trainer, evaluate

    x_train, _, x_test = (a.astype(np.float32) for a in load_binarized_mnist(args.data_dir))
    x_test64 = x_test.astype(np.float64)
    print(f"quality: binarized MNIST, batch 100, Adam 1e-3, {args.epochs} epochs; test -ELBO on "
          f"{len(x_test)} images, -log p(x) with K={args.k} on the first {args.n_ll}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    rows = collections.defaultdict(list)
    for seed in args.seeds:
        for side in ("mlp", "conv"):
            vae = (VAE(784, 20, hidden=(400,), activation="relu", seed=seed, dtype=np.float32)
                   if side == "mlp" else ConvVAE(**CONV, seed=seed, dtype=np.float32))
            cfg = TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, seed=seed, progress=False)
            tr = Trainer(vae, x_train, None, cfg)
            t0 = time.perf_counter()
            tr.fit()
            per_epoch = (time.perf_counter() - t0) / args.epochs
            v64 = vae.astype(np.float64)
            ev = evaluate(v64, x_test64, seed=seed, k=1)
            ev_ll = evaluate(v64, x_test64[:args.n_ll], seed=seed, k=1)   # the same images as -log p(x)
            ll = log_likelihood(v64, x_test64[:args.n_ll], k=args.k, rng=np.random.default_rng(seed))
            r = dict(side=side, seed=seed, neg_elbo=ev["neg_elbo"], nll=float(-ll.mean()),
                     neg_elbo_same=ev_ll["neg_elbo"], epoch_seconds=per_epoch,
                     n_params=int(vae.flat_params.size))
            rows[side].append(r)
            print(f"  seed {seed} {side:<5} -ELBO {r['neg_elbo']:8.3f}  -log p(x) {r['nll']:8.3f} "
                  f"(-ELBO {r['neg_elbo_same']:.3f} on the same {args.n_ll} images)  "
                  f"({per_epoch:.0f} s an epoch, {r['n_params']} parameters, "
                  f"load {os.getloadavg()[0]:.2f})", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")

    def ms(v):
        return f"{statistics.mean(v):8.3f} +- {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:8.3f}"
    print(f"\n{'model':<6} {'seeds':>5} {'test -ELBO':>20} {'-log p(x), K=' + str(args.k):>20} "
          f"{'s/epoch':>8}")
    for side in ("mlp", "conv"):
        rs = rows[side]
        print(f"{side:<6} {len(rs):>5} {ms([r['neg_elbo'] for r in rs]):>20} "
              f"{ms([r['nll'] for r in rs]):>20} {statistics.mean(r['epoch_seconds'] for r in rs):8.1f}")
    if rows["mlp"] and rows["conv"]:
        gap = [m["nll"] - c["nll"] for m, c in zip(rows["mlp"], rows["conv"])]
        print(f"conv better than MLP by {ms(gap)} nats of -log p(x) (paired by seed)")


# ------------------------------------------------------------------------------ speed
def run_numpyvae(steps, batch):
    import numpy as np
    sys.path.insert(0, ROOT)
    from numpyvae.conv import ConvVAE
    from numpyvae.speed.heap import keep_freed_heap
    from numpyvae.training.trainer import TrainConfig, Trainer

    keep_freed_heap()                   # as the Trainer's CLI run does
    x = _binary(batch * 8)
    vae = ConvVAE(**CONV, seed=0, dtype=np.float32)
    tr = Trainer(vae, x, None, TrainConfig(batch_size=batch, progress=False))
    times = []
    for i in range(steps + 3):
        xb = x[(i % 8) * batch:(i % 8 + 1) * batch]
        t0 = time.perf_counter()
        tr.train_step(xb)
        times.append(time.perf_counter() - t0)
    return dict(step_s=statistics.median(times[3:]))


def run_torch(steps, batch, threads):
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    class ConvVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),
                                     nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten())
            self.fc_mu, self.fc_logvar = nn.Linear(3136, 20), nn.Linear(3136, 20)
            self.dec = nn.Sequential(nn.Linear(20, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                                     nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(32, 1, 4, 2, 1))

        def forward(self, x):
            h = self.enc(x)
            mu, logvar = self.fc_mu(h), self.fc_logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.dec(z), mu, logvar

    model = ConvVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(_binary(batch * 8)).view(-1, 1, 28, 28)
    times = []
    for i in range(steps + 3):
        xb = x[(i % 8) * batch:(i % 8 + 1) * batch]
        t0 = time.perf_counter()
        opt.zero_grad()
        logits, mu, logvar = model(xb)
        loss = (F.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
                - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())) / batch
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return dict(step_s=statistics.median(times[3:]))


def _worker(side, threads, steps, batch):
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, "--threads", str(threads),
           "--steps", str(steps), "--batch", str(batch)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def speed(args):
    try:
        import torch  # noqa: F401
        sides = ("numpyvae", "torch")
    except ImportError:
        print("torch is not installed: the PyTorch side is skipped (pip install torch)")
        sides = ("numpyvae",)
    print(f"speed: ConvVAE step (1-32-64 convolutions, kernel 4, stride 2, z 20), float32, "
          f"B={args.batch}, median of {args.steps} steps; load {os.getloadavg()[0]:.2f}")
    for threads in (1, 2):
        r = {}
        for _ in range(args.repeats):              # alternate the sides: the load drifts
            for side in sides:
                r.setdefault(side, []).append(_worker(side, threads, args.steps, args.batch)["step_s"])
        line = f"  {threads} thread{'s' if threads > 1 else ' '}: numpyvae {1e3 * min(r['numpyvae']):7.1f} ms"
        if "torch" in r:
            ratio = min(r["torch"]) / min(r["numpyvae"])
            line += (f"  torch {1e3 * min(r['torch']):7.1f} ms  numpyvae speed / torch's = {ratio:.2f}"
                     f"  (best of {args.repeats}; load {os.getloadavg()[0]:.2f})")
        print(line, flush=True)


# ------------------------------------------------------------------------------ parts
def _products(vae):
    """[(m, k, n, a_T)] the matrix products of one step, read from the layers' caches."""
    from numpyvae.conv_layers import Conv2d, ConvTranspose2d
    from numpyvae.layers import Linear
    out = []
    for _, layer in vae._named_linears():
        if isinstance(layer, Conv2d):
            N, ckk = layer._cache["cols"].shape
            F = layer.out_channels
            out += [(N, ckk, F), (F, N, ckk)] + ([(N, F, ckk)] if layer.input_grad else [])
        elif isinstance(layer, ConvTranspose2d):
            N, cin = layer._cache["xf"].shape
            kkc = layer._cache["Wm"].shape[1]
            out += [(N, cin, kkc), (cin, N, kkc), (N, kkc, cin)]
        elif isinstance(layer, Linear):
            (B, din), dout = layer.x.shape, layer.W.shape[1]
            out += [(B, din, dout), (din, B, dout)] + ([(B, dout, din)] if layer.input_grad else [])
    return out


def parts(args):
    import numpy as np
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, ROOT)
    from numpyvae import conv_layers, layers, likelihoods, model, optim
    from numpyvae.conv import ConvVAE
    from numpyvae.speed.heap import keep_freed_heap
    from numpyvae.training.trainer import TrainConfig, Trainer

    keep_freed_heap()
    acc = collections.Counter()
    wrapped = [
        (conv_layers.Conv2d, "forward", "Conv2d forward"), (conv_layers.Conv2d, "backward", "Conv2d backward"),
        (conv_layers.ConvTranspose2d, "forward", "ConvTranspose2d forward"),
        (conv_layers.ConvTranspose2d, "backward", "ConvTranspose2d backward"),
        (conv_layers, "im2col_nhwc", "  im2col copies"),
        (conv_layers, "col2im_nhwc", "  col2im adds"),
        (conv_layers, "_pad_nhwc", "  padding copies"),
        (layers.Linear, "forward", "Linear forward"), (layers.Linear, "backward", "Linear backward"),
        (layers.ReLU, "forward", "activations"), (layers.ReLU, "backward", "activations"),
        (likelihoods.Bernoulli, "log_prob", "Bernoulli log p(x|z) and gradient"),
        (likelihoods.Bernoulli, "grad", "Bernoulli log p(x|z) and gradient"),
        (model.VAE, "_forward_args", "forward's checks and the eps draw"),
        (optim.Adam, "step", "Adam"),
    ]
    for owner, attr, row in wrapped:
        f = getattr(owner, attr)

        def timed(*a, _f=f, _row=row, **k):
            t0 = time.perf_counter()
            r = _f(*a, **k)
            acc[_row] += time.perf_counter() - t0
            return r
        setattr(owner, attr, timed)
    with threadpool_limits(limits=1, user_api="blas"):
        x = _binary(args.batch * 8)
        vae = ConvVAE(**CONV, seed=0, dtype=np.float32)
        tr = Trainer(vae, x, None, TrainConfig(batch_size=args.batch, progress=False))
        for i in range(3):
            tr.train_step(x[i * args.batch:(i + 1) * args.batch])
        acc.clear()
        t0 = time.perf_counter()
        for i in range(args.steps):
            tr.train_step(x[(i % 8) * args.batch:(i % 8 + 1) * args.batch])
        step = (time.perf_counter() - t0) / args.steps
        prods = _products(vae)
        rng = np.random.default_rng(0)
        mats = [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32))
                for m, k, n in prods]
        t0 = time.perf_counter()
        for _ in range(args.steps):
            for a, b in mats:
                a @ b
        gemm = (time.perf_counter() - t0) / args.steps
    never = sorted({row for _, _, row in wrapped if acc[row] == 0})
    if never:       # a renamed or bypassed piece would silently leave its row out of the table
        sys.exit(f"bench_conv: these pieces of the step were never timed: {', '.join(never)}")
    print(f"parts: one numpyvae ConvVAE step on one thread, B={args.batch}, mean of {args.steps} "
          f"steps: {1e3 * step:.1f} ms; load {os.getloadavg()[0]:.2f}")
    inner = [r for r in acc if r.startswith("  ")]
    for row, t in sorted(acc.items(), key=lambda kv: -kv[1]):
        if row not in inner:
            print(f"  {row:<38} {1e3 * t / args.steps:7.2f} ms  {100 * t / args.steps / step:5.1f} %")
    print("  inside the convolution layers above:")
    for row in inner:
        print(f"  {row:<38} {1e3 * acc[row] / args.steps:7.2f} ms  {100 * acc[row] / args.steps / step:5.1f} %")
    flops = sum(2 * m * k * n for m, k, n in prods)
    print(f"  the step's {len(prods)} matrix products alone, same shapes: {1e3 * gemm:.1f} ms "
          f"({flops / gemm / 1e9:.1f} GFLOP/s), {100 * gemm / step:.0f} % of the step; the rest "
          f"(copies, adds, elementwise work, Python) {1e3 * (step - gemm):.1f} ms")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="quality,speed,parts")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--k", type=int, default=1000, help="importance samples for -log p(x)")
    ap.add_argument("--n-ll", type=int, default=1000, help="test images for -log p(x)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data-dir", default=DATA)
    ap.add_argument("--json", help="append one JSON line per quality run to this file")
    ap.add_argument("--worker", choices=("numpyvae", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for name in ("epochs", "k", "n_ll", "steps", "batch", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.worker:
        r = (run_numpyvae(args.steps, args.batch) if args.worker == "numpyvae"
             else run_torch(args.steps, args.batch, args.threads))
        print(json.dumps(r))
        return
    try:
        args.seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    chosen = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(chosen) - {"quality", "speed", "parts"}
    if unknown or not chosen:
        ap.error(f"--parts must name some of quality, speed, parts; got {args.parts!r}")
    for part in ("speed", "parts", "quality"):
        if part in chosen:
            globals()[part](args)


if __name__ == "__main__":
    main()
