"""Throughput and memory of the importance-sampled log-likelihood (numpyvae.theory.estimators).

Times ``log_likelihood`` for a 784-400-20 Bernoulli VAE on random binary images, for float32
and float64 and two memory budgets (``max_floats``), and projects the cost of the standard
MNIST evaluation: K = 5000 samples for each of 10,000 test images. Peak memory is measured
with tracemalloc (numpy reports its buffers to it).

    python benchmarks/bench_loglik.py [--images 20] [--k 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import numpyvae as nv  # noqa: E402
from numpyvae.theory.estimators import log_likelihood  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--k", type=int, default=2000)
    args = p.parse_args()
    x = (np.random.default_rng(0).random((args.images, 784)) < 0.15).astype(np.float32)
    print(f"{args.images} images x K = {args.k}; 784-400-20 relu bernoulli")
    print(f"{'dtype':>8} {'max_floats':>11} {'us/sample':>10} {'peak MB':>8} {'10k x 5000 (min)':>17}")
    for dtype in (np.float32, np.float64):
        vae = nv.VAE(784, 20, hidden=(400,), seed=0, dtype=dtype)
        for mf in (25_000_000, 2_500_000):
            tracemalloc.start()
            t = time.perf_counter()
            log_likelihood(vae, x, k=args.k, rng=0, max_floats=mf)
            dt = time.perf_counter() - t
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            per = dt / (args.images * args.k)
            print(f"{np.dtype(dtype).name:>8} {mf:>11,d} {per * 1e6:>10.2f} {peak:>8.0f} "
                  f"{per * 10_000 * 5000 / 60:>17.1f}")


if __name__ == "__main__":
    main()
