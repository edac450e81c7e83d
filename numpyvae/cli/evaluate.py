"""``numpyvae gradcheck`` (every gradient of a small float64 model against central differences)
and ``numpyvae evaluate`` (the negative ELBO of a checkpoint and, with ``--iw-k``, its
importance-sampled log-likelihood).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from .. import _rng
from ..conv import conv_run_bytes
from ..gradcheck import check_model
from ..model import VAE
from ..speed import threads
from ..training import checkpoint as ck
from ..training import memory, pretrained
from ..training.trainer import _seed_streams, binarize_batch, evaluate
from . import likelihood
from .common import check_memory, data_folder, extras, fmt, load_data, say, threads_choice
from .errors import CLIError
from .parser import ALREADY_BINARY, LIKELIHOOD_CHOICES, TOY_SETS

__all__ = ["cmd_gradcheck", "cmd_evaluate"]


def cmd_gradcheck(a: argparse.Namespace) -> int:
    names = LIKELIHOOD_CHOICES if a.likelihood == "all" else (a.likelihood,)
    ok_all = True
    for lik in names:
        vae = VAE(x_dim=a.x_dim, z_dim=a.z_dim, hidden=a.hidden, likelihood=lik, activation=a.activation,
                  c=0.5, seed=a.seed, dtype=np.float64)
        rng = np.random.default_rng(a.seed + 1)
        if lik == "bernoulli":
            x = (rng.random((a.batch_size, a.x_dim)) < 0.5).astype(np.float64)
        else:
            x = rng.random((a.batch_size, a.x_dim))
        eps = rng.standard_normal((a.k, a.batch_size, a.z_dim))
        report = check_model(vae, x, eps=eps, beta=a.beta, kl=a.kl, seed=a.seed)
        hidden = "-".join(str(h) for h in a.hidden)
        arch = f"{a.x_dim}-{hidden + '-' if hidden else ''}{a.z_dim}"
        print(f"== likelihood {lik}, model {arch}, activation {a.activation}, B={a.batch_size}, K={a.k}, "
              f"kl={a.kl}, beta={a.beta:g}, float64, eps fixed")
        print(report)
        print()
        ok_all = ok_all and bool(report.passed)
    print("gradient check: " + ("all passed" if ok_all else "FAILED"))
    return 0 if ok_all else 1


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------
def cmd_evaluate(a: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    # a run directory stands for its checkpoint, a shipped model's name for its file;
    # CheckpointError -> one line, exit 2 (also for NaN or mistyped parameters)
    c = ck.load(pretrained.checkpoint_path(a.checkpoint))
    name = a.dataset or c.extra.get("dataset")
    if not name:
        raise CLIError(f"{a.checkpoint}: the checkpoint does not record its data set; pass --dataset")
    mode = c.extra.get("binarize")
    if a.dataset and a.dataset != c.extra.get("dataset"):
        mode = None if a.dataset in TOY_SETS or a.dataset in ALREADY_BINARY else mode
    m = c.model_config
    itemsize = np.dtype(m.get("dtype", "float32")).itemsize

    def need(**v: Any) -> int:
        if m.get("model") == "conv":
            return conv_run_bytes(m["image_shape"], int(m["z_dim"]), m["channels"], int(m["kernel_size"]),
                                  int(m["stride"]), int(m["padding"]), str(m.get("likelihood")),
                                  batch_size=v["--batch-size"], k=v["--k"], itemsize=itemsize, eval_batch=0)
        return memory.run_bytes(int(m.get("x_dim", 1)), int(m.get("z_dim", 1)), list(m.get("hidden", ())),
                                str(m.get("likelihood")), batch_size=v["--batch-size"], k=v["--k"],
                                itemsize=itemsize, eval_batch=0)
    check_memory({"--k": a.k, "--batch-size": a.batch_size}, need, {"--k": 1, "--batch-size": 500})
    vae = c.build_model()
    data_seed = int(c.extra.get("data_seed", 0))
    ds = load_data(name, data_folder(a.data_dir), data_seed, mode, test=a.split in ("auto", "test"),
                   who="" if a.dataset else f"the checkpoint's data set {name}")
    if ds.x_dim != int(vae.config["x_dim"]):
        raise CLIError(f"data set {name} has D = {ds.x_dim} but the model expects x_dim = {vae.config['x_dim']}")
    split = a.split
    if split == "auto":
        split = "test" if ds.x_test is not None else "val"
    if split == "test":
        if ds.x_test is None:
            raise CLIError(f"data set {name} has no test split (use --split val)")
        x, y = ds.x_test, ds.y_test
    else:
        x, y = ds.x_val, ds.y_val
    if a.max_examples is not None:
        x, y = x[: a.max_examples], (None if y is None else y[: a.max_examples])
    x = np.asarray(x, dtype=vae.dtype)
    if not getattr(vae, "needs_labels", False):
        y = None
    elif y is None:
        raise CLIError(f"the conditional model needs labels; data set {name} has none")
    else:
        y = np.asarray(y, dtype=np.int64)
    if a.iw_k is not None and not getattr(vae, "stochastic", True):
        raise CLIError("evaluate --iw-k: a VQ-VAE's posterior is one code per position (no sampling): its "
                       "importance-sampled log p(x) is its ELBO, printed without --iw-k")
    if not getattr(vae, "stochastic", True) and a.k != 1:
        raise CLIError("evaluate --k: a VQ-VAE draws no samples; leave --k 1")
    dynamic = mode == "dynamic"
    seed = a.seed if a.seed is not None else int(c.train_config.get("seed", 0))
    kl = c.train_config.get("kl", "closed")
    n_threads, blas_line, _ = threads_choice(a.threads)
    say(blas_line)
    with threads.blas_threads(n_threads):
        res = evaluate(vae, x, seed=seed, batch_size=a.batch_size, k=a.k, kl=kl, binarize=dynamic, y=y)
        note = " (binarised once with a fixed seed)" if dynamic else ""
        print(f"checkpoint {a.checkpoint}: epoch {c.epoch}, step {c.step}")
        print(f"{name} {split} split, {res['n']} examples{note}, K = {a.k}:")
        print(f"negative ELBO: {fmt(res['neg_elbo'])} nats = reconstruction {fmt(res['recon'])} "
              f"+ KL {fmt(res['kl'])}" + extras({f"val_{k}": v for k, v in res.items()}))
        if a.iw_k is not None:
            xi = x
            if dynamic:
                xi = binarize_batch(x, np.random.default_rng(_seed_streams(seed)["val_binarize"]))
            ll = likelihood.importance_sampled(vae, xi, a.iw_k, _rng.generator(seed, "iw_eps"), say, y=y)
            given = " | y" if y is not None else ""
            print(f"importance-sampled log p(x{given}), K = {a.iw_k}: {fmt(float(ll.mean()))} nats "
                  f"(negative: {fmt(-float(ll.mean()))})")
    print(f"time: {time.perf_counter() - t0:.1f}s")
    return 0

