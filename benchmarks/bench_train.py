"""Training throughput of numpyvae against the matrix-multiply floor.

For each architecture this times a full training step (forward, backward, Adam)
and, in the same process, only the matrix multiplies that step performs (every
Linear's forward product, its weight-gradient product and, where needed, its
input-gradient product). No NumPy implementation can beat the second number, so
the ratio matmul-only time / step time says how much of the step is overhead.

Each setting runs in a fresh subprocess so the BLAS thread count
(OPENBLAS_NUM_THREADS etc.) is fixed before NumPy loads.

    python benchmarks/bench_train.py            # 1 thread and the default
    python benchmarks/bench_train.py --steps 300
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CASES = [
    dict(name="784-400-20 relu bernoulli B=128", hidden=(400,), z_dim=20,
         activation="relu", batch=128),
    dict(name="784-200-200-50 tanh bernoulli B=100", hidden=(200, 200), z_dim=50,
         activation="tanh", batch=100),
]
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker(steps: int) -> None:
    import numpy as np
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    import numpyvae as nv

    out = []
    for case in CASES:
        rng = np.random.default_rng(0)
        # grey-level digits-like data: the cost does not depend on the values
        x_all = (rng.random((4096, 784)) < 0.13).astype(np.float32)
        vae = nv.VAE(784, case["z_dim"], hidden=case["hidden"], activation=case["activation"],
                     likelihood="bernoulli", seed=0, dtype=np.float32)
        opt = nv.Adam(lr=1e-3)
        B = case["batch"]
        batches = [x_all[i:i + B] for i in range(0, len(x_all) - B + 1, B)]

        def step(xb, vae=vae, opt=opt):   # bind this case's model (B023)
            vae.forward(xb)
            vae.backward()
            opt.step(vae.flat_params, vae.flat_grads)

        for xb in batches[:5]:
            step(xb)
        t0 = time.perf_counter()
        for i in range(steps):
            step(batches[i % len(batches)])
        t_step = (time.perf_counter() - t0) / steps

        # the same products, shapes taken from the model's own layers
        prods = []
        for _, lin in vae._named_linears():
            d_in, d_out = lin.W.shape
            rows = B  # decoder rows are K*B = B here (K = 1)
            a = rng.standard_normal((rows, d_in)).astype(np.float32)
            dy = rng.standard_normal((rows, d_out)).astype(np.float32)
            W = lin.W
            dW = np.empty_like(W)
            prods.append((a, W, dy, dW, lin.input_grad))

        def matmuls(prods=prods):
            for a, W, dy, dW, need_dx in prods:
                a @ W
                np.matmul(a.T, dy, out=dW)
                if need_dx:
                    dy @ W.T

        for _ in range(5):
            matmuls()
        t0 = time.perf_counter()
        for _ in range(steps):
            matmuls()
        t_mm = (time.perf_counter() - t0) / steps
        out.append(dict(name=case["name"], batch=B, step_ms=1e3 * t_step,
                        matmul_ms=1e3 * t_mm, examples_per_s=B / t_step,
                        floor_examples_per_s=B / t_mm, ratio=t_mm / t_step))
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.steps)
        return
    print(f"numpyvae training-step benchmark, float32, Adam, {args.steps} timed steps\n")
    print(f"{'case':<38} {'threads':>7} {'step ms':>8} {'ex/s':>8} "
          f"{'matmul ms':>9} {'floor ex/s':>10} {'matmul/step':>11}")
    for threads in ("1", "default"):
        env = dict(os.environ)
        for v in THREAD_VARS:
            if threads == "default":
                env.pop(v, None)
            else:
                env[v] = threads
        res = subprocess.run([sys.executable, __file__, "--worker", "--steps", str(args.steps)],
                             env=env, capture_output=True, text=True, check=True)
        for r in json.loads(res.stdout.strip().splitlines()[-1]):
            print(f"{r['name']:<38} {threads:>7} {r['step_ms']:>8.2f} {r['examples_per_s']:>8.0f} "
                  f"{r['matmul_ms']:>9.2f} {r['floor_examples_per_s']:>10.0f} {r['ratio']:>11.2f}")


if __name__ == "__main__":
    main()
