"""This machine's roofline on one thread: the matrix-product flop rate and the memory bandwidth.

Three measurements, float32, one BLAS thread, each the best of many repeats (the fastest repeat
is the one least disturbed by other processes) in CPU time of this thread:

* GEMM: ``a @ W`` at the shapes of a training step (B=128 against 784x400, and a large square
  product), in floating-point operations a second (2 m n k per product);
* stream: ``np.add(a, b, out=c)`` (12 bytes an element) and a copy (8 bytes) over arrays far
  larger than the last-level cache (main memory) and over arrays of a step's size (in cache);
* the cost of one NumPy call on a tiny array (what every elementwise pass pays before its bytes).

From these it prints the ridge point (flops per byte at which a kernel stops being limited by
memory) and, for the two models of ``bench_vs_torch.py``, a step's flops, its elementwise bytes
and the time the roofline allows. ``derivations/18_where_the_time_goes.md`` reads these numbers.

    python benchmarks/bench_roofline.py
    python benchmarks/bench_roofline.py --big-mb 64 --repeats 20     # smaller, quicker
"""
from __future__ import annotations

import argparse
import os
import sys
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_vs_torch import MODELS  # noqa: E402


def best(f, repeats):
    """The fastest of ``repeats`` calls of f, in this thread's CPU seconds (after one warm-up)."""
    f()
    out = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        f()
        out = min(out, time.thread_time() - t0)
    return out


def gemm_rate(m, k, n, repeats):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    inner = max(1, int(2e8 // (2 * m * k * n)))     # about 0.2 Gflop per timed call

    def run():
        for _ in range(inner):
            np.matmul(a, w, out=c)
    return 2 * m * k * n * inner / best(run, repeats)


def stream_rates(n, repeats):
    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    inner = max(1, int(5e7 // n))                   # about 50 M elements per timed call

    def add():
        for _ in range(inner):
            np.add(a, b, out=c)

    def copy():
        for _ in range(inner):
            np.copyto(c, a)
    return 12 * n * inner / best(add, repeats), 8 * n * inner / best(copy, repeats)


def call_cost(repeats):
    a, b, c = (np.ones(8, np.float32) for _ in range(3))

    def run():
        for _ in range(10000):
            np.add(a, b, out=c)
    return best(run, repeats) / 10000


def step_counts(m):
    """(flops of a step's products, parameters, elements of the step's (B, D) arrays)."""
    B, Z, hidden = m["batch"], m["z_dim"], m["hidden"]
    sizes = [(784, hidden[0])] + list(zip(hidden[:-1], hidden[1:]))
    layers = sizes + [(hidden[-1], Z), (hidden[-1], Z)]                       # encoder, two heads
    dec = [(Z, hidden[-1])] + [(b, a) for a, b in reversed(list(zip(hidden[:-1], hidden[1:])))]
    layers += dec + [(hidden[0], 784)]
    flops, params = 0, 0
    for i, (a, b) in enumerate(layers):
        params += a * b + b
        # forward x W, weight gradient x^T dy, input gradient dy W^T (not for the first layer)
        flops += 2 * B * a * b * (2 if i == 0 else 3)
    return flops, params


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mb", type=int, default=128, help="size of each main-memory array, MB")
    ap.add_argument("--repeats", type=int, default=40, help="repeats per measurement (the best is kept)")
    args = ap.parse_args(argv)
    if args.big_mb < 1 or args.repeats < 1:
        ap.error("--big-mb and --repeats: expected positive integers")
    print(f"one thread, float32, best of {args.repeats} in CPU time; load {os.getloadavg()[0]:.2f}")
    f_step = gemm_rate(128, 784, 400, args.repeats)
    f_big = gemm_rate(1024, 1024, 1024, max(3, args.repeats // 8))
    print(f"GEMM 128x784 @ 784x400: {f_step / 1e9:.1f} Gflop/s; 1024^3: {f_big / 1e9:.1f} Gflop/s")
    big = args.big_mb * 2**20 // 4
    add_mem, copy_mem = stream_rates(big, max(3, args.repeats // 8))
    small = 128 * 784
    add_l2, copy_l2 = stream_rates(small, args.repeats)
    print(f"stream, main memory ({args.big_mb} MB arrays): add {add_mem / 1e9:.1f} GB/s, "
          f"copy {copy_mem / 1e9:.1f} GB/s")
    print(f"stream, a (128, 784) array ({small * 4 / 1e3:.0f} kB, in cache): add {add_l2 / 1e9:.1f} GB/s, "
          f"copy {copy_l2 / 1e9:.1f} GB/s")
    c = call_cost(args.repeats)
    print(f"one NumPy call on 8 elements: {c * 1e6:.2f} us")
    print(f"ridge point: {f_step / add_mem:.0f} flop/byte (main memory), {f_step / add_l2:.0f} flop/byte (in cache)")
    for m in MODELS.values():
        flops, params = step_counts(m)
        t_prod = flops / f_step
        t_adam = 28 * params / add_mem
        print(f"{m['label']}: {flops / 1e6:.0f} Mflop of products ({t_prod * 1e3:.2f} ms at the GEMM rate), "
              f"{params:,} parameters (a fused Adam moves {28 * params / 1e6:.1f} MB: {t_adam * 1e3:.2f} ms from "
              f"memory); products alone {m['batch'] / t_prod:,.0f} samples/s")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
