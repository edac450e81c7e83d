"""Is the blocked Adam worth keeping? The Trainer's step with speed.adam.BlockedAdam against optim.Adam.

Both trainers live in one process and take turns in short bursts (``--burst`` steps each,
``--bursts`` times), so a load spike from another process hits both alike; the median time
per step of each is compared. The rule the package follows (issue 8, item 7): a fast path
beside the readable one only when it makes the training step more than 5% faster.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_adam_paths.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from numpyvae import VAE  # noqa: E402
from numpyvae.optim import Adam  # noqa: E402
from numpyvae.speed.adam import BlockedAdam  # noqa: E402
from numpyvae.training.trainer import TrainConfig, Trainer  # noqa: E402

MODELS = {"784-400-20 ReLU, B=128": dict(hidden=(400,), z_dim=20, activation="relu", batch=128),
          "784-200-200-50 tanh, B=100": dict(hidden=(200, 200), z_dim=50, activation="tanh", batch=100)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bursts", type=int, default=40)
    ap.add_argument("--burst", type=int, default=10)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x = (rng.random((4096, 784), dtype=np.float32) < 0.13).astype(np.float32)
    print(f"Trainer.train_step, float32, {args.bursts} alternating bursts of {args.burst} steps; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; "
          f"load {os.getloadavg()[0]:.2f}")
    for label, m in MODELS.items():
        trainers = {}
        for fast in (True, False):
            vae = VAE(784, m["z_dim"], hidden=m["hidden"], activation=m["activation"], seed=0,
                      dtype=np.float32)
            cfg = TrainConfig(epochs=1, batch_size=m["batch"], progress=False)
            trainers[fast] = Trainer(vae, x, None, cfg, optimizer=BlockedAdam(1e-3) if fast else Adam(1e-3))
        B = m["batch"]
        batches = [x[i:i + B] for i in range(0, len(x) - B + 1, B)]
        times = {True: [], False: []}
        for b in range(args.bursts + 2):
            for fast in ((True, False) if b % 2 == 0 else (False, True)):
                tr = trainers[fast]
                t0 = time.perf_counter()
                for i in range(args.burst):
                    tr.train_step(batches[(b * args.burst + i) % len(batches)])
                if b >= 2:                      # two warm-up bursts
                    times[fast].append((time.perf_counter() - t0) / args.burst)
        tf, tp = statistics.median(times[True]), statistics.median(times[False])
        drift = float(np.max(np.abs(trainers[True].vae.flat_params - trainers[False].vae.flat_params)))
        print(f"{label:<28} step fast {1e3 * tf:6.2f} ms, plain {1e3 * tp:6.2f} ms: "
              f"fast Adam makes the step {100 * (tp / tf - 1):5.1f}% faster "
              f"(same data and noise; max |param difference| after training {drift:.1e})")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
