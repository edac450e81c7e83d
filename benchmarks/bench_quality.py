"""Quality at equal budget: numpyvae against the PyTorch VAE under one training protocol.

Protocol (both sides): Larochelle's binarized MNIST (50,000 training images), 784-400-20 ReLU
encoder/decoder with Bernoulli output, batch 100, Adam lr 1e-3, 10 epochs, one seed per run.
Both trained models are scored by the SAME code: the PyTorch weights are copied into a
numpyvae ``VAE`` (W = weight.T, b = bias; the logits are fc_out's output), and then

* test negative ELBO: ``numpyvae.training.trainer.evaluate`` on the 10,000 test images
  (closed-form KL, ``--elbo-k`` samples of z per image, seeded);
* -log p(x): ``numpyvae.theory.estimators.log_likelihood`` with K = ``--k`` (1000)
  importance samples on the first ``--n-ll`` (1000) test images.

Sides: ``numpyvae`` (the package's default initialisation, ``init="uniform"``: W and b ~
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch's nn.Linear), ``numpyvae-he`` (``init="he"``:
He/Glorot normal, zero biases, the package's default before the quality comparison) and
``torch`` (skipped with a note when torch is absent). Mean and standard deviation over the
seeds are printed per side.

    python benchmarks/bench_quality.py --seeds 0,1,2
    python benchmarks/bench_quality.py --seeds 0 --epochs 2 --sides numpyvae,torch   # quick
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from numpyvae import VAE  # noqa: E402
from numpyvae.data.formats import load_binarized_mnist  # noqa: E402
from numpyvae.theory.estimators import log_likelihood  # noqa: E402
from numpyvae.training.trainer import TrainConfig, Trainer, evaluate  # noqa: E402

DATA = "/work/shared/data/binarized-mnist"


def train_numpyvae(x_train, seed, epochs, init):
    vae = VAE(784, 20, hidden=(400,), activation="relu", seed=seed, dtype=np.float32, init=init)
    cfg = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, seed=seed, progress=False)
    Trainer(vae, x_train, None, cfg).fit()
    return vae.astype(np.float64)


def train_torch(x_train, seed, epochs):
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "1")))

    class ExampleVAE(nn.Module):        # the pytorch/examples VAE, as in bench_vs_torch.py
        def __init__(self):
            super().__init__()
            self.fc1, self.fc_mu, self.fc_logvar = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
            self.fc3, self.fc_out = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc_mu(h), self.fc_logvar(h)
            std = torch.exp(0.5 * logvar)
            z = mu + std * torch.randn_like(std)
            return torch.sigmoid(self.fc_out(F.relu(self.fc3(z)))), mu, logvar

    model = ExampleVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(x_train)), batch_size=100, shuffle=True)
    for _ in range(epochs):
        for (xb,) in loader:
            opt.zero_grad()
            recon, mu, logvar = model(xb)
            loss = (F.binary_cross_entropy(recon, xb, reduction="sum")
                    - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()))
            loss.backward()
            opt.step()
    # the same network as a numpyvae VAE, so both sides are scored by one estimator
    vae = VAE(784, 20, hidden=(400,), activation="relu", seed=seed)
    for name, lin in (("enc.0", model.fc1), ("enc.mu", model.fc_mu), ("enc.logvar", model.fc_logvar),
                      ("dec.0", model.fc3), ("dec.out", model.fc_out)):
        vae.params[f"{name}.W"][...] = lin.weight.detach().numpy().T
        vae.params[f"{name}.b"][...] = lin.bias.detach().numpy()
    return vae


def score(vae, x_test, n_ll, k, elbo_k, seed):
    t0 = time.perf_counter()
    ev = evaluate(vae, x_test, seed=seed, k=elbo_k)
    ll = log_likelihood(vae, x_test[:n_ll], k=k, rng=np.random.default_rng(seed))
    return dict(neg_elbo=ev["neg_elbo"], recon=ev["recon"], kl=ev["kl"],
                nll=float(-ll.mean()), eval_seconds=time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--sides", default="numpyvae,numpyvae-he,torch")
    ap.add_argument("--k", type=int, default=1000, help="importance samples for -log p(x)")
    ap.add_argument("--n-ll", type=int, default=1000, help="test images for -log p(x)")
    ap.add_argument("--elbo-k", type=int, default=10, help="samples of z per image for the ELBO")
    ap.add_argument("--data-dir", default=DATA)
    ap.add_argument("--json", help="append one JSON line per run to this file")
    args = ap.parse_args(argv)

    x_train, _, x_test = (a.astype(np.float32) for a in load_binarized_mnist(args.data_dir))
    x_test64 = x_test.astype(np.float64)
    seeds = [int(s) for s in args.seeds.split(",")]
    sides = args.sides.split(",")
    if "torch" in sides:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: the PyTorch side is skipped (pip install torch)")
            sides.remove("torch")
    print(f"binarized MNIST, 784-400-20 ReLU, batch 100, Adam 1e-3, {args.epochs} epochs; "
          f"test -ELBO on 10000 images ({args.elbo_k} z per image), "
          f"-log p(x) with K={args.k} on the first {args.n_ll}; load {os.getloadavg()[0]:.2f}")
    results = {s: [] for s in sides}
    for seed in seeds:                               # round-robin over sides within a seed
        for side in sides:
            t0 = time.perf_counter()
            if side == "torch":
                vae = train_torch(x_train, seed, args.epochs)
            else:
                vae = train_numpyvae(x_train, seed, args.epochs,
                                     "he" if side == "numpyvae-he" else "uniform")
            train_s = time.perf_counter() - t0
            r = dict(side=side, seed=seed, train_seconds=train_s,
                     **score(vae, x_test64, args.n_ll, args.k, args.elbo_k, seed))
            results[side].append(r)
            print(f"  seed {seed} {side:<17} -ELBO {r['neg_elbo']:8.3f}  -log p(x) {r['nll']:8.3f}  "
                  f"(recon {r['recon']:.2f}, kl {r['kl']:.2f}; train {train_s:.0f} s, "
                  f"eval {r['eval_seconds']:.0f} s, load {os.getloadavg()[0]:.2f})", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")

    def ms(v):
        return (f"{statistics.mean(v):8.3f} +- {statistics.stdev(v):.3f}" if len(v) > 1
                else f"{v[0]:8.3f}         ")
    print(f"\n{'side':<18} {'seeds':>5} {'test -ELBO':>18} {'-log p(x), K=' + str(args.k):>20}")
    for side in sides:
        rs = results[side]
        print(f"{side:<18} {len(rs):>5} {ms([r['neg_elbo'] for r in rs]):>18} "
              f"{ms([r['nll'] for r in rs]):>20}")


if __name__ == "__main__":
    main()
