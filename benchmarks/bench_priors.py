"""Learned priors on binarized MNIST: test -log p(x) of N(0, I), a mixture and a VampPrior at equal epochs.

Protocol (every prior the same): Larochelle's binarized MNIST (``--n-train`` of the 50,000 training
images, the first ``--n-test`` test images), a VAE 784-300-300-40 (ReLU, Bernoulli decoder) trained
with the package's one ``Trainer`` (Adam, lr 1e-3, batch 100, ``--epochs`` epochs, ``--warmup``
epochs of linear KL warm-up) for each prior and seed:

* ``normal``: N(0, I), the closed-form KL (the plain ``VAE``);
* ``mog:C``: a mixture of C Gaussians, learned (``PriorVAE``, Monte Carlo KL);
* ``vamp:C``: a VampPrior with C pseudo-inputs started at training images.

Score: -log p(x) on the test images by ``numpyvae.theory.estimators.log_likelihood`` with K = ``--k``
(1000) importance samples from q(z|x) (the model's ``log_weights``, so the learned prior is in the
weights). Printed per run, then mean and standard deviation over seeds per prior, beside Tomczak &
Welling (2018): 88.56 nats (N(0, I)) and 85.57 (VampPrior, C = 500) for their one-stochastic-layer
MLP VAE, trained far longer (up to 2000 epochs with early stopping, warm-up over 100 epochs).

    python benchmarks/bench_priors.py                                   # 3 seeds, small settings
    python benchmarks/bench_priors.py --n-train 50000 --epochs 50 --n-test 10000 --k 5000   # closer
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from numpyvae import VAE  # noqa: E402
from numpyvae.data.formats import load_binarized_mnist  # noqa: E402
from numpyvae.priors import PriorVAE  # noqa: E402
from numpyvae.theory.estimators import log_likelihood  # noqa: E402
from numpyvae.training.trainer import TrainConfig, Trainer  # noqa: E402

DATA = "/work/shared/data/binarized-mnist"
PAPER = {"normal": 88.56, "vamp": 85.57}


def build(spec, seed, x_train):
    if spec == "normal":
        return VAE(784, 40, hidden=(300, 300), seed=seed, dtype=np.float32)
    m = PriorVAE(784, 40, hidden=(300, 300), seed=seed, dtype=np.float32, prior=spec)
    if spec.startswith("vamp"):   # pseudo-inputs start at training images (Tomczak & Welling's better start)
        rng = np.random.default_rng(seed)
        m.prior.pseudo[...] = x_train[rng.choice(len(x_train), m.prior.n_components, replace=False)]
    return m


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--priors", default="normal,mog:10,vamp:500")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--json", default=None, help="append one JSON line per run to this file")
    a = p.parse_args(argv)
    if not os.path.isdir(DATA):
        print(f"binarized MNIST not found in {DATA}: nothing to measure")
        return
    x_train, _, x_test = (np.asarray(v, np.float32) for v in load_binarized_mnist(DATA))
    x_train, x_test = x_train[:a.n_train], x_test[:a.n_test].astype(np.float64)
    print(f"binarized MNIST: {len(x_train)} train, {len(x_test)} test images; 784-300-300-40 ReLU; "
          f"{a.epochs} epochs (warm-up {a.warmup:g}), Adam 1e-3, batch 100; -log p(x) with K = {a.k}")
    rows = []
    for spec in a.priors.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            m = build(spec, seed, x_train)
            cfg = TrainConfig(epochs=a.epochs, batch_size=100, lr=1e-3, seed=seed, warmup_epochs=a.warmup,
                              progress=False)
            t0 = time.perf_counter()
            Trainer(m, x_train, None, cfg).fit()
            t_train = time.perf_counter() - t0
            m64 = m.copy(np.float64)
            t0 = time.perf_counter()
            nll = -float(np.mean(log_likelihood(m64, x_test, k=a.k, rng=np.random.default_rng(100 + seed))))
            r = {"prior": spec, "seed": seed, "nll": nll, "train_s": t_train,
                 "eval_s": time.perf_counter() - t0, "epochs": a.epochs, "n_train": len(x_train),
                 "n_test": len(x_test), "k": a.k}
            rows.append(r)
            print(f"{spec:>10} seed {seed}: -log p(x) {nll:7.2f} nats  (train {t_train:.0f} s, "
                  f"eval {r['eval_s']:.0f} s)", flush=True)
            if a.json:
                with open(a.json, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
    print("\nper prior: mean +- std over seeds (Tomczak & Welling 2018, far longer training, beside)")
    base = None
    for spec in a.priors.split(","):
        v = np.array([r["nll"] for r in rows if r["prior"] == spec])
        base = v.mean() if spec == "normal" else base
        diff = "" if base is None or spec == "normal" else f"  ({v.mean() - base:+.2f} against N(0, I))"
        paper = PAPER.get(spec.split(":")[0])
        print(f"{spec:>10}: {v.mean():7.2f} +- {v.std(ddof=1) if len(v) > 1 else 0:.2f}{diff}"
              + (f"   paper {paper}" if paper else ""))


if __name__ == "__main__":
    main()
