"""The model a fresh ``numpyvae train`` run trains: built from its options through one registry
config, after the checks that refuse flags the chosen model would ignore or that contradict each
other, and the check that it fits in this machine's memory.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _registry
from ..conv import conv_run_bytes
from ..data import DATASETS
from ..training import memory
from . import errors
from .common import check_memory
from .errors import CLIError
from .parser import ALREADY_BINARY, TOY_SETS, TRAIN_DEFAULTS

__all__ = ["build_model", "check_family_flags", "train_mode", "check_train_memory"]


def build_model(a: argparse.Namespace, x_dim: int, likelihood: str, n_classes: int | None = None,
                image_shape: Sequence[int] | None = None) -> Any:
    """The model a fresh ``numpyvae train`` run trains, from its options: a config whose
    ``"model"`` kind ``numpyvae._registry`` builds (a new model registers its kind there and
    meets the trainer's model contract, ``numpyvae/training/trainer.py``)."""
    cfg: dict[str, Any] = {"x_dim": x_dim, "hidden": list(a.hidden), "likelihood": likelihood,
                           "activation": a.activation, "c": a.c, "seed": a.seed, "dtype": np.dtype(a.dtype).name}
    if a.model == "vqvae":
        cfg.update(model="vqvae", n_codes=a.n_codes, code_dim=a.code_dim, codebook_size=a.codebook_size,
                   beta=a.commitment)
    elif a.model == "conv":
        cfg = {"model": "conv", "image_shape": [1, *image_shape], "z_dim": a.z_dim, "channels": list(a.channels),
               "kernel_size": a.kernel_size, "stride": a.stride, "padding": a.padding,
               "likelihood": likelihood, "activation": a.activation, "c": a.c, "seed": a.seed,
               "dtype": np.dtype(a.dtype).name, "objective": a.objective,
               "n_classes": n_classes if a.conditional else None}
    elif a.prior != "normal":
        cfg.update(model="prior", z_dim=a.z_dim, prior=a.prior)
    elif a.conditional or a.posterior != "diag" or a.objective != "elbo":
        cfg.update(model="family", z_dim=a.z_dim, posterior=a.posterior, objective=a.objective,
                   n_classes=n_classes if a.conditional else None)
    else:
        cfg.update(model="vae", z_dim=a.z_dim)
    return _registry.from_config(cfg)


def check_family_flags(a: argparse.Namespace) -> None:
    """Reject family flags that would otherwise be ignored or contradict each other."""
    vq = a.model == "vqvae"
    if a.objective == "iwae" and (a.beta != 1.0 or a.warmup_epochs > 0):
        raise CLIError("--objective iwae: the bound has no KL weight; leave --beta 1 and --warmup-epochs 0")
    if a.objective == "iwae" and a.kl != "closed":
        raise CLIError("--objective iwae: --kl does not apply (the bound uses log q - log p at each sample)")
    if vq and (a.objective != "elbo" or a.posterior != "diag" or a.conditional):
        raise CLIError("--model vqvae takes none of --objective, --posterior, --conditional")
    if vq and (a.beta != 1.0 or a.k != 1 or a.kl != "closed" or a.warmup_epochs > 0):
        raise CLIError("--model vqvae has no KL term or samples: use --commitment, not --beta/--k/--kl/--warmup-epochs")
    if not vq and (a.n_codes, a.code_dim, a.codebook_size, a.commitment) != (8, 4, 32, 0.25):
        raise CLIError("--n-codes, --code-dim, --codebook-size and --commitment need --model vqvae")
    if a.prior != "normal" and (a.model != "vae" or a.conditional or a.posterior != "diag" or a.objective != "elbo"):
        raise CLIError(f"--prior {a.prior} works with the plain VAE (ELBO, diagonal posterior, no labels); "
                       "drop --model, --conditional, --posterior and --objective")
    if (vq or a.conditional) and not a.resume and a.dataset in TOY_SETS:
        raise CLIError(f"--conditional / --model vqvae train on image data sets, got {a.dataset!r}")
    conv = a.model == "conv"
    if conv and a.posterior != "diag":
        raise CLIError("--model conv has a diagonal posterior: drop --posterior full")
    if conv and not a.resume and a.dataset in TOY_SETS:
        raise CLIError(f"--model conv trains on image data sets, got {a.dataset!r}")
    if conv and not a.channels:
        raise CLIError("--channels: --model conv needs at least one convolution, e.g. 32,64")
    if conv and a.padding >= a.kernel_size:
        raise CLIError(f"--padding {a.padding} must be smaller than --kernel-size {a.kernel_size}")
    if not conv and (tuple(a.channels), a.kernel_size, a.stride, a.padding) != (
            TRAIN_DEFAULTS["channels"], TRAIN_DEFAULTS["kernel_size"], TRAIN_DEFAULTS["stride"],
            TRAIN_DEFAULTS["padding"]):
        raise CLIError("--channels, --kernel-size, --stride and --padding need --model conv")


def train_mode(a: argparse.Namespace) -> tuple[str, str | None]:
    """(likelihood, binarisation mode) of a fresh run, or CLIError."""
    if a.dataset not in DATASETS:
        raise CLIError(f"unknown dataset {a.dataset!r} (choose from: {', '.join(DATASETS)})")
    toy = a.dataset in TOY_SETS
    likelihood = a.likelihood or ("gaussian" if toy else "bernoulli")
    if toy and likelihood == "bernoulli":
        raise CLIError(f"--likelihood bernoulli needs data in [0, 1]; {a.dataset} is 2-D real-valued data "
                       "(use gaussian)")
    if toy and a.binarize in ("dynamic", "fixed"):
        raise CLIError(f"--binarize {a.binarize} applies to grey-level images, not to the 2-D set {a.dataset}")
    already_binary = a.dataset in ALREADY_BINARY
    if a.binarize == "auto":
        mode = "dynamic" if (likelihood == "bernoulli" and not toy and not already_binary) else None
    else:
        mode = None if a.binarize == "none" else a.binarize
    if already_binary and mode is not None:
        raise CLIError(f"--binarize: {a.dataset} is already binary (use --binarize none or auto)")
    return likelihood, mode


def check_train_memory(a: argparse.Namespace, x_dim: int, likelihood: str,
                       image_shape: Sequence[int] | None = None) -> None:
    """Refuse a model whose training would not fit in this machine's memory."""
    itemsize = np.dtype(a.dtype).itemsize
    if a.model == "conv":
        shape = (1, *image_shape)
        try:                                   # sizes that do not fit the image: one line
            conv_run_bytes(shape, a.z_dim, a.channels, a.kernel_size, a.stride, a.padding, likelihood)
        except ValueError as exc:
            raise errors.option_error("--model conv", exc) from None

        def need_conv(**v: Any) -> int:
            return conv_run_bytes(shape, v["--z-dim"], a.channels, a.kernel_size, a.stride, a.padding,
                                  likelihood, batch_size=v["--batch-size"], k=v["--k"], itemsize=itemsize)
        d = TRAIN_DEFAULTS
        check_memory({"--z-dim": a.z_dim, "--k": a.k, "--batch-size": a.batch_size}, need_conv,
                     {"--z-dim": d["z_dim"], "--k": d["k"], "--batch-size": d["batch_size"]})
        return

    def need(**v: Any) -> int:
        return memory.run_bytes(x_dim, v["--z-dim"], v["--hidden"], likelihood, batch_size=v["--batch-size"],
                                k=v["--k"], itemsize=itemsize)

    d = TRAIN_DEFAULTS
    check_memory({"--z-dim": a.z_dim, "--hidden": tuple(a.hidden), "--k": a.k, "--batch-size": a.batch_size},
                 need,
                 {"--z-dim": d["z_dim"], "--hidden": d["hidden"], "--k": d["k"], "--batch-size": d["batch_size"]})

