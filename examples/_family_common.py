"""Shared plumbing for the model-family examples (11-14): data with labels, a training loop
that takes the objective, the posterior and the labels, and small table helpers.

Not part of the package; each example imports it from its own folder.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# this checkout's package first, even when another numpyvae is installed
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from _theory_common import (HERE, int_between, nonneg_float, out_dir, parser, positive_float,  # noqa: F401
                            positive_int, save_figure, save_text)

import numpyvae as nv  # noqa: E402


def shared_data_dir():
    return os.environ.get("NUMPYVAE_DATA") or HERE.parent.parent / "shared" / "data"


def load_labelled(source="auto", seed=0, binarize="fixed"):
    """(Dataset, name): "mnist" / "fashion-mnist" from the shared folder, else the packaged 10k."""
    from numpyvae import data as ds
    if source == "auto":
        source = "mnist" if (Path(shared_data_dir()) / "mnist").is_dir() else "mnist-embedded"
    if source == "mnist-embedded":
        return ds.load_dataset("mnist-embedded", binarize=binarize, seed=seed), source
    return ds.load_dataset(source, data_dir=shared_data_dir(), binarize=binarize, seed=seed), source


def fit(model, x, epochs, y=None, batch=100, lr=1e-3, seed=0, log=True, label="", opt=None,
        on_epoch=None, **forward_kw):
    """Adam on minibatches of x (and labels y); forward_kw go to model.forward. -> per-epoch
    mean training loss list and seconds."""
    opt = nv.optim.Adam(lr=lr) if opt is None else opt
    rng = np.random.default_rng(seed)
    x = x.astype(model.dtype)
    t0 = time.perf_counter()
    losses = []
    for ep in range(epochs):
        perm = rng.permutation(len(x))
        tot, n = 0.0, 0
        for i in range(0, len(x) - batch + 1, batch):
            sel = perm[i:i + batch]
            kw = dict(forward_kw)
            if y is not None:
                kw["y"] = y[sel]
            t = model.forward(x[sel], **kw)
            model.backward()
            opt.step(model.flat_params, model.flat_grads)
            tot, n = tot + t.loss, n + 1
        losses.append(tot / n)
        if log:
            print(f"  {label} epoch {ep + 1}/{epochs}: train loss {losses[-1]:.2f} nats "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if on_epoch is not None:
            on_epoch(ep)
    return losses, time.perf_counter() - t0


def active_units(vae, x, threshold=1e-2, y=None):
    """Burda et al.'s count: dimensions u with Cov_x(E_q[z_u]) > threshold. -> (count, variances)."""
    mu = np.concatenate([vae.encode(x[i:i + 500], None if y is None else y[i:i + 500])[0]
                         for i in range(0, len(x), 500)])
    v = mu.var(axis=0)
    return int(np.sum(v > threshold)), v


def table(rows, cols):
    w = [max(len(c), *(len(f"{r[c]}") for r in rows)) for c in cols]
    out = ["  ".join(c.rjust(n) for c, n in zip(cols, w)), "  ".join("-" * n for n in w)]
    out += ["  ".join(f"{r[c]}".rjust(n) for c, n in zip(cols, w)) for r in rows]
    return "\n".join(out)
