"""Where a one-thread training step goes, and how close to the matrix-product bound it can get.

``bench_vs_torch.py`` reports numpyvae / matmul: the time of the step's matrix products alone
over the time of the whole ``Trainer`` step. This script takes the step apart to say why that
ratio is what it is on this machine. In one process, on one BLAS thread, float32, for the two
models of ``bench_vs_torch.py``:

* the step: ``Trainer.train_step`` (forward, backward, the finiteness check, Adam), the median
  over bursts of steps on random binary images;
* its products alone: ``bench_vs_torch.run_matmul``, the same products on the same shapes;
* its pieces: the same steps again with a timer around each piece (the layers, the
  likelihood, the reparameterization and KL, forward's argument checks and noise draw, Adam,
  the minibatch copy), and g . g (the finiteness check) timed on its own. What the timers do
  not cover is the Python between the pieces (the timers add about a microsecond a call);
* Adam's memory floor: its update reads theta, g and the two sums and writes theta and the
  sums back, 28 bytes a float32 parameter; ``np.add(a, b, out=c)`` over arrays of the
  parameter buffer's size moves 12 bytes a parameter and sets this machine's streaming rate.
  No implementation of the update, compiled or not, moves those bytes faster.

The last lines say how much time everything but the products may take for the step to reach
0.6 of the bound, how much it takes now, and the ratio reached if Adam ran at its floor.

    python benchmarks/bench_step_parts.py
    python benchmarks/bench_step_parts.py --models tanh --bursts 20
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import statistics
import sys
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"         # before NumPy loads: one BLAS thread, as the bound's 1-thread column

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_vs_torch import MODELS, _data, run_matmul  # noqa: E402

from numpyvae import VAE, layers, likelihoods, model  # noqa: E402
from numpyvae.speed.adam import BlockedAdam  # noqa: E402
from numpyvae.training import trainer  # noqa: E402
from numpyvae.speed.heap import keep_freed_heap  # noqa: E402

#: (owner, attribute, piece): what the timers wrap, and the row each call adds to
PIECES = [
    (layers.Linear, "forward", "Linear forward (product + bias)"),
    (layers.Linear, "backward", "Linear backward (products + bias sum)"),
    (layers.ReLU, "forward", "activations"), (layers.ReLU, "backward", "activations"),
    (layers.Tanh, "forward", "activations"), (layers.Tanh, "backward", "activations"),
    (likelihoods.Bernoulli, "log_prob", "Bernoulli log p(x|z)"),
    (likelihoods.Bernoulli, "grad", "Bernoulli gradient"),
    (model.VAE, "_forward_args", "forward's checks and the eps draw"),
    (model, "reparameterize", "reparameterization and KL"),
    (model, "reparameterize_backward", "reparameterization and KL"),
    (model, "kl_normal_std", "reparameterization and KL"),
    (model, "kl_normal_std_grad", "reparameterization and KL"),
    (BlockedAdam, "step", "Adam update"),
    (trainer.Trainer, "_minibatch", "minibatch copy"),
]
TARGET = 0.6


def _trainer(m, x):
    vae = VAE(784, m["z_dim"], hidden=m["hidden"], activation=m["activation"], seed=0, dtype=np.float32)
    cfg = trainer.TrainConfig(epochs=1, batch_size=m["batch"], progress=False)
    return trainer.Trainer(vae, x, None, cfg, optimizer=BlockedAdam(1e-3))


def _burst_times(tr, x, B, bursts, burst, warmed=None):
    """Seconds per ``train_step``: (median over ``bursts`` bursts, mean over all of them), after
    two warm-up bursts, at whose end ``warmed`` (if given) is called."""
    order = np.random.default_rng(1).permutation(len(x))
    for i in range(2 * burst):
        tr.train_step(tr._minibatch(order[i * B:(i + 1) * B], np.float32))
    if warmed is not None:
        warmed()
    times, i = [], 0
    for _ in range(bursts):
        t0 = time.perf_counter()
        for _ in range(burst):
            start = (i * B) % (len(x) - B)
            tr.train_step(tr._minibatch(order[start:start + B], np.float32))
            i += 1
        times.append((time.perf_counter() - t0) / burst)
    return statistics.median(times), statistics.fmean(times)


@functools.cache
def _streaming_rate(n):
    """Bytes a second that ``np.add(a, b, out=c)`` moves over float32 arrays of n elements."""
    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    for _ in range(20):
        np.add(a, b, out=c)
    ts = []
    for _ in range(200):
        t0 = time.perf_counter()
        np.add(a, b, out=c)
        ts.append(time.perf_counter() - t0)
    return 12 * n / statistics.median(ts)


def parts(m, bursts, burst):
    """The rows for one model: {piece: ms a step}, plus the step, the products and the floors."""
    x = _data(8192)
    B = m["batch"]
    keep_freed_heap()
    tr = _trainer(m, x)
    step, _ = _burst_times(tr, x, B, bursts, burst)

    spent = collections.Counter()
    counting = [False]        # switched on after the warm-up bursts
    saved = []
    for owner, name, piece in PIECES:
        f = getattr(owner, name)
        saved.append((owner, name, f))

        def timed(*a, _f=f, _piece=piece, **k):
            t0 = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                if counting[0]:
                    spent[_piece] += time.perf_counter() - t0
        setattr(owner, name, timed)
    try:
        tr2 = _trainer(m, x)
        _, step_timed = _burst_times(tr2, x, B, bursts, burst, warmed=lambda: counting.__setitem__(0, True))
    finally:
        for owner, name, f in reversed(saved):
            setattr(owner, name, f)
    missed = sorted({piece for _, _, piece in PIECES} - set(spent))
    if missed:     # a renamed function would otherwise drop out of the table without a word
        raise RuntimeError(f"pieces never timed: {missed}; the step no longer calls what PIECES wraps")
    rows = {p: 1e3 * s / (bursts * burst) for p, s in spent.items()}
    g = tr.vae.flat_grads
    ts = []
    for _ in range(300):
        t0 = time.perf_counter()
        float(np.dot(g, g))
        ts.append(time.perf_counter() - t0)
    rows["finiteness check g . g"] = 1e3 * statistics.median(ts)
    n = tr.vae.flat_params.size
    prods = 1e3 * B / run_matmul(m, 200 * B, 3, 1)["samples_per_s"]
    return dict(step=1e3 * step, step_timed=1e3 * step_timed, rows=rows, products=prods, n_params=n,
                adam_floor=1e3 * 28 * n / _streaming_rate(n), rate=_streaming_rate(n))


def report(label, r):
    step, prods, rows = r["step"], r["products"], r["rows"]
    print(f"\n{label}: a step {step:.2f} ms; its products alone {prods:.2f} ms "
          f"(numpyvae / matmul = {prods / step:.3f})")
    head = f"piece (timers on: the step took {r['step_timed']:.2f} ms)"
    print(f"  {head:<52} {'ms':>6} {'share':>6}")
    for piece, ms in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f"  {piece:<52} {ms:>6.3f} {100 * ms / r['step_timed']:>5.1f}%")
    rest = r["step_timed"] - sum(rows.values())
    print(f"  {'the Python between the pieces (the rest)':<52} {rest:>6.3f} {100 * rest / r['step_timed']:>5.1f}%")
    budget = prods / TARGET - prods
    other = step - prods
    adam = rows.get("Adam update", 0.0)
    print(f"  for {TARGET} of the bound everything but the products must fit in {budget:.2f} ms; it takes "
          f"{other:.2f} ms ({other / budget:.2f}x the budget)")
    print(f"  Adam: {adam:.3f} ms for {r['n_params']:,} parameters; its memory floor (28 bytes a parameter at "
          f"{r['rate'] / 1e9:.1f} GB/s) is {r['adam_floor']:.3f} ms; with Adam at that floor the step would "
          f"reach {prods / (step - adam + r['adam_floor']):.3f} of the bound, and with every piece but the "
          f"products and Adam's floor free, {prods / (prods + r['adam_floor']):.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="relu,tanh", help="comma-separated: relu, tanh")
    ap.add_argument("--bursts", type=int, default=30, help="timed bursts of steps (median)")
    ap.add_argument("--burst", type=int, default=20, help="steps a burst")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    for name in models:
        if name not in MODELS:
            ap.error(f"--models: expected names from {sorted(MODELS)}, got {name!r}")
    if args.bursts < 1 or args.burst < 1:
        ap.error("--bursts and --burst: expected positive integers")
    print(f"one BLAS thread, float32, Trainer.train_step on random binary images; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name in models:
        report(MODELS[name]["label"], parts(MODELS[name], args.bursts, args.burst))
    print(f"\nload average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
