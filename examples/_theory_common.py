"""Shared plumbing for the theory examples (01-07): output folder, data, a small trained VAE.

Not part of the package; each example imports it from its own folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import os

import numpy as np

HERE = Path(__file__).resolve().parent
try:  # run from a checkout without installing the package
    import numpyvae  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent))
import numpyvae as nv  # noqa: E402
# the numpyvae command's argument checks: one line and exit code 2 for a bad value
from numpyvae.cli.argtypes import (ScriptParser, int_between, nonneg_float, nonneg_int,  # noqa: E402,F401
                                   out_folder, positive_float, positive_int)

import matplotlib  # noqa: E402

matplotlib.use("Agg")


def parser(description):
    p = ScriptParser(description=description)
    p.add_argument("--out", type=out_folder, default=HERE / "output",
                   help="folder for figures and tables (default: examples/output/)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    return p


def out_dir(args):
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out


def save_text(path, text):
    Path(path).write_text(text + "\n", encoding="utf-8")
    print(f"[saved {path}]")


def save_figure(fig, path, t0):
    """Lay out and write ``fig`` to ``path``; report the example's time since ``t0``."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"[saved {path}]  ({time.perf_counter() - t0:.1f} s in all)")


def load_binary_mnist(source="mnist-embedded", seed=0):
    """Fixed-binarized MNIST as float arrays: (x_train, x_val).

    "mnist-embedded": the packaged 10k t10k images (9000 train / 1000 val), no files needed.
    "mnist": the shared 60k training images (50000 / 10000) if the data folder exists.
    """
    from numpyvae import data as ds

    if source == "mnist":
        shared = os.environ.get("NUMPYVAE_DATA") or HERE.parent.parent / "shared" / "data"
        d = ds.load_dataset("mnist", data_dir=shared, binarize="fixed", seed=seed)
    else:
        d = ds.load_dataset("mnist-embedded", binarize="fixed", seed=seed)
    return d.x_train, d.x_val


def train_vae(x, hidden=(200,), z_dim=10, epochs=2, batch=100, lr=1e-3, seed=0, dtype=np.float32,
              cache=None, log=True):
    """Train a Bernoulli VAE with Adam on x (N, 784); optionally cached as an .npz in ``cache``."""
    vae = nv.VAE(x.shape[1], z_dim, hidden=hidden, likelihood="bernoulli", activation="relu",
                 seed=seed, dtype=dtype)
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as f:
            vae.load_state_dict({k: f[k] for k in f.files})
        if log:
            print(f"[loaded trained model from {cache}]")
        return vae, 0.0
    opt = nv.optim.Adam(lr=lr)
    rng = np.random.default_rng(seed)
    x = x.astype(dtype)
    t0 = time.perf_counter()
    for ep in range(epochs):
        perm = rng.permutation(len(x))
        tot = 0.0
        for i in range(0, len(x) - batch + 1, batch):
            t = vae.forward(x[perm[i:i + batch]])
            vae.backward()
            opt.step(vae.flat_params, vae.flat_grads)
            tot += t.elbo
        if log:
            print(f"  epoch {ep + 1}/{epochs}: mean train ELBO {tot / (len(x) // batch):.2f} nats "
                  f"({time.perf_counter() - t0:.1f} s)")
    if cache is not None:
        np.savez(cache, **vae.state_dict())
    return vae, time.perf_counter() - t0
