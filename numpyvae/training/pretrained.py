"""The trained models that ship with the package, and any checkpoint read back as a model.

``numpyvae/shipped/`` holds checkpoints written by ``scripts/make_shipped_models.py`` (the
command that trained each one, and what it reaches, are in ``numpyvae/shipped/README.md`` and
in each checkpoint's ``extra["shipped"]``):

* ``mnist-2d``: a 784-400-2 VAE, the latent plane of the course website's explorer;
* ``mnist-20d``: the default 784-400-20 VAE of ``numpyvae train``.

They hold the model only (no optimizer state): they are for looking and evaluating, not for
``--resume``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import checkpoint
from . import rundir

__all__ = ["SHIPPED_DIR", "SHIPPED", "shipped_path", "checkpoint_path", "load_model"]

#: the folder of the shipped checkpoints (package data)
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "shipped"

#: name -> what the shipped model is
SHIPPED: dict[str, str] = {
    "mnist-2d": "784-400-2 Bernoulli VAE on the packaged MNIST digits (a 2-D latent plane)",
    "mnist-20d": "784-400-20 Bernoulli VAE on the packaged MNIST digits (numpyvae train's defaults)",
}


def shipped_path(name: str) -> str:
    """The path of the shipped checkpoint ``name`` (one of ``SHIPPED``)."""
    if name not in SHIPPED:
        raise ValueError(f"name: expected one of the shipped models {', '.join(SHIPPED)}, got {name!r}")
    return str(SHIPPED_DIR / f"{name}.npz")


def checkpoint_path(path: str | os.PathLike) -> str:
    """The checkpoint file that ``path`` stands for.

    A file is itself; a run directory stands for its ``checkpoint.npz``; ``runs/latest`` is
    followed; the name of a shipped model (``"mnist-2d"``) stands for its file when no file or
    directory of that name exists. Anything else that does not exist raises ``CheckpointError``.
    """
    p = rundir.resolve(os.fspath(path))
    if os.path.isdir(p) and os.path.isfile(os.path.join(p, "checkpoint.npz")):
        return os.path.join(p, "checkpoint.npz")
    if not os.path.exists(p):
        if os.fspath(path) in SHIPPED:
            return shipped_path(os.fspath(path))
        raise checkpoint.CheckpointError(f"checkpoint not found: {os.fspath(path)} (expected a checkpoint "
                                         f"file, a run directory or a shipped model: {', '.join(SHIPPED)})")
    return p


def load_model(path: str | os.PathLike) -> Any:
    """The model stored in a checkpoint written by numpyvae, ready to encode and decode.

    path: a checkpoint file (``runs/x/checkpoint.npz``), a run directory, or the name of a
    shipped model (``"mnist-2d"``, ``"mnist-20d"``). Reads the file with the checkpoint
    module's reader (validated, nothing unpickled) and rebuilds the model it records (a
    ``numpyvae.VAE``, or a ``VQVAE``) with its parameters. A missing, damaged or foreign
    file raises ``checkpoint.CheckpointError`` (a ``ValueError``) with a one-line message.
    """
    return checkpoint.load(checkpoint_path(path)).build_model()
