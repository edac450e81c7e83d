"""The ``numpyvae`` command's parsers: its options, their types and the train defaults.

``build_parser(preset)`` returns the parser of ``numpyvae train | gradcheck | evaluate |
assignment``. Every parser here refuses abbreviated options (``--resum`` is an unknown option,
never ``--resume``) and turns argparse's complaint into a ``CLIError``: one line, exit code 2
(``cli/errors.py``). The train options default to None so that ``--resume`` can tell an option
the user typed from one left at its default; ``TRAIN_DEFAULTS`` fills them in afterwards.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import __version__
from . import argtypes
from .errors import PROG, CLIError
from ..data import DATASETS
from ..training.presets import add_preset_arguments, check_preset_dataset, cli_defaults

__all__ = ["build_parser", "reparse_with_preset", "TRAIN_DEFAULTS", "RESUME_MAY_CHANGE", "DEFAULT_EPOCHS",
           "TOY_SETS", "ALREADY_BINARY", "GENERATED", "LIKELIHOOD_CHOICES", "ACTIVATION_CHOICES",
           "OPTIMIZER_CHOICES"]

DEFAULT_EPOCHS = 30
TOY_SETS = ("two-moons", "gaussian-mixture", "pinwheel")
#: data sets whose images are binary already: no binarization on load or per batch
ALREADY_BINARY = ("binarized-mnist", "shapes")
#: image sets drawn from the seed, needing no data directory
GENERATED = ("shapes",)
LIKELIHOOD_CHOICES = ("bernoulli", "gaussian", "gaussian_learned")
ACTIVATION_CHOICES = ("relu", "leaky_relu", "tanh", "sigmoid", "softplus", "identity")
OPTIMIZER_CHOICES = ("sgd", "momentum", "adagrad", "adam")
#: ``numpyvae train`` defaults. The parser's defaults are None so that ``--resume`` can tell
#: an option the user typed from one left at its default.
TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": "mnist-embedded", "z_dim": 20, "hidden": (400,), "activation": "relu", "likelihood": None,
    "c": 1.0, "k": 1, "kl": "closed", "beta": 1.0, "warmup_epochs": 0.0, "epochs": DEFAULT_EPOCHS,
    "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "seed": 0, "dtype": "float32", "binarize": "auto",
    "max_train": None, "threads": "auto", "out": None, "data_dir": None,
    # the model family (derivations/10_model_family.md)
    "model": "vae", "objective": "elbo", "posterior": "diag", "conditional": False,
    "n_codes": 8, "code_dim": 4, "codebook_size": 32, "commitment": 0.25,
    # the convolutional VAE (derivations/14_convolutions.md)
    "channels": (32, 64), "kernel_size": 4, "stride": 2, "padding": 1,
    # a learned prior (derivations/15_learned_priors.md)
    "prior": "normal",
}
# options that may differ from the checkpoint on --resume (applied and recorded)
RESUME_MAY_CHANGE = ("epochs", "lr", "threads", "out", "data_dir")


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block plus a message; we want exactly one line and exit 2.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False  # --resum is an unknown option, never --resume
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


# ----------------------------------------------------------------------------------------------
# argument types
# ----------------------------------------------------------------------------------------------
# shared with the example scripts (cli/argtypes.py)
_positive_int, _nonneg_int = argtypes.positive_int, argtypes.nonneg_int
_positive_float, _nonneg_float = argtypes.positive_float, argtypes.nonneg_float


def _hidden(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text == "":
        return ()
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated positive layer sizes like '400' or '200,200' (or '' for none), got {text!r}"
            ) from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
        out.append(v)
    return tuple(out)


def _threads(text: str) -> str | int:
    if text == "auto":
        return "auto"
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return v


# ----------------------------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------------------------
def _overview() -> str:
    sets = "\n".join(f"  {name:<17} {desc}" for name, desc in DATASETS.items())
    return f"""commands (numpyvae COMMAND --help shows every option):
  train       train a VAE; each run writes to a fresh runs/<time>-<dataset>/ (runs/latest points
              at the newest): checkpoint, history.csv and figures
              main options: --dataset NAME --data-dir DIR --epochs N --z-dim Z --hidden 400,200
              --likelihood {{{','.join(LIKELIHOOD_CHOICES)}}} --lr LR --seed S --out DIR
              --resume --force --threads N|auto --no-progress
  evaluate    negative ELBO (and with --iw-k K the importance-sampled log-likelihood) of a
              checkpoint: numpyvae evaluate runs/latest/checkpoint.npz [--iw-k 5000]
  gradcheck   central-difference check of every gradient of a small float64 model
  assignment  instructors: 'assignment make DIR' writes student stubs, 'assignment grade FILE'
              grades them by gradient checks

data sets (--dataset):
{sets}
"""


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    """Return the ``argparse`` parser of the ``numpyvae`` command (subcommands train,
    gradcheck, evaluate, assignment); with ``preset`` the train options default to that
    preset's values."""
    p = _Parser(prog=PROG, description="A variational autoencoder in NumPy with hand-written gradients.",
                epilog=_overview(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"numpyvae {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = TRAIN_DEFAULTS
    t = sub.add_parser("train", help="train a VAE and write checkpoint, history and figures",
                       description="Train a VAE; writes checkpoint.npz (+ .json), history.csv/.json and PNG figures "
                                   "to a fresh directory runs/<time>-<dataset>/ (runs/latest points at the newest) "
                                   "or to --out.")
    t.add_argument("--dataset", help=f"data set name (default: {d['dataset']}, shipped with the package): "
                                     + ", ".join(DATASETS))
    t.add_argument("--data-dir", help="directory with real data sets (default: $NUMPYVAE_DATA)")
    t.add_argument("--z-dim", type=_positive_int, help=f"latent dimension (default {d['z_dim']})")
    t.add_argument("--hidden", type=_hidden,
                   help="hidden layer sizes, e.g. '400' or '200,200'; '' for none (default 400)")
    t.add_argument("--activation", choices=ACTIVATION_CHOICES, help=f"hidden activation (default {d['activation']})")
    t.add_argument("--likelihood", choices=LIKELIHOOD_CHOICES,
                   help="decoder likelihood (default: bernoulli for images, gaussian for 2-D toy data)")
    t.add_argument("--c", type=_positive_float, help="variance of the fixed-variance Gaussian decoder (default 1)")
    t.add_argument("--k", type=_positive_int, help="Monte Carlo samples per example (default 1)")
    t.add_argument("--kl", choices=("closed", "mc"), help="closed-form or Monte Carlo KL (default closed)")
    t.add_argument("--beta", type=_nonneg_float, help="weight of the KL term (default 1)")
    t.add_argument("--warmup-epochs", type=_nonneg_float, help="linear KL warm-up length in epochs (default 0: none)")
    t.add_argument("--epochs", type=_positive_int, help=f"epochs in total (default {DEFAULT_EPOCHS})")
    t.add_argument("--batch-size", type=_positive_int, help=f"minibatch size (default {d['batch_size']})")
    t.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, help="optimizer (default adam)")
    t.add_argument("--lr", type=_positive_float, help="learning rate (default 1e-3; may change on --resume)")
    t.add_argument("--seed", type=_nonneg_int, help="seed of the data split, the model and the trainer (default 0)")
    t.add_argument("--dtype", choices=("float32", "float64"), help="floating-point type of the model (default float32)")
    t.add_argument("--out", help="output directory (default: a fresh runs/<time>-<dataset>/; with --resume: "
                                 "runs/latest)")
    t.add_argument("--force", action="store_true", help="replace the run already in --out")
    t.add_argument("--binarize", choices=("auto", "dynamic", "fixed", "none"),
                   help="binarisation of grey-level images (default auto: dynamic for the Bernoulli likelihood)")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal); the per-epoch "
                        "lines stay")
    t.add_argument("--max-train", type=_positive_int, help="use only the first N training examples")
    t.add_argument("--time-limit", type=_positive_float, default=None, metavar="MINUTES",
                   help="stop at the end of the first epoch that finishes after MINUTES of training (the run "
                        "keeps its checkpoint, figures and, with --preset, the paper's evaluation; continue "
                        "with --resume)")
    t.add_argument("--threads", type=_threads,
                   help="threads: a number, or auto (default): 1 when the other cores are busy, else the idle "
                        "physical cores up to 4; an OPENBLAS_NUM_THREADS/OMP_NUM_THREADS setting wins. With N > 1 "
                        "each minibatch is split in N parts trained at once, each on a one-thread BLAS")
    _add_family_flags(t)
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out (default runs/latest) up to --epochs in total; model, data and "
                        "training options come from the checkpoint (only --epochs, --lr, --threads may change)")
    _preset_hook_parser(t, preset)

    g = sub.add_parser("gradcheck", help="finite-difference check of every gradient of a small model",
                       description="Build a small float64 VAE (12-8-3 by default), fix eps, and compare the analytic "
                                   "gradient of the loss with central differences for every parameter.")
    g.add_argument("--likelihood", choices=LIKELIHOOD_CHOICES + ("all",), default="all",
                   help="decoder likelihood to check (default all three, one after the other)")
    g.add_argument("--activation", choices=ACTIVATION_CHOICES, default="tanh", help="hidden activation (default tanh)")
    g.add_argument("--x-dim", type=_positive_int, default=12, help="data dimension D (default 12)")
    g.add_argument("--hidden", type=_hidden, default=(8,), help="hidden layer sizes, e.g. '8' or '8,6' (default 8)")
    g.add_argument("--z-dim", type=_positive_int, default=3, help="latent dimension (default 3)")
    g.add_argument("--batch-size", type=_positive_int, default=5, help="examples in the checked batch (default 5)")
    g.add_argument("--k", type=_positive_int, default=2,
                   help="Monte Carlo samples per example, eps held fixed (default 2)")
    g.add_argument("--kl", choices=("closed", "mc"), default="closed",
                   help="closed-form or Monte Carlo KL (default closed)")
    g.add_argument("--beta", type=_nonneg_float, default=1.0, help="weight of the KL term (default 1)")
    g.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the weights, data and eps (default 0)")

    e = sub.add_parser("evaluate",
                       help="negative ELBO (and optionally importance-sampled log-likelihood) of a checkpoint",
                       description="Evaluate a checkpoint on the test split (the validation split when the data set "
                                   "has no test split).")
    e.add_argument("checkpoint",
                   help="path of a checkpoint.npz written by 'numpyvae train' (e.g. runs/latest/checkpoint.npz), "
                        "or a shipped model: mnist-2d, mnist-20d")
    e.add_argument("--dataset", default=None, help="override the data set recorded in the checkpoint")
    e.add_argument("--data-dir", default=None, help="directory with real data sets (default: $NUMPYVAE_DATA)")
    e.add_argument("--split", choices=("auto", "test", "val"), default="auto",
                   help="default auto: test if present, else val")
    e.add_argument("--k", type=_positive_int, default=1, help="Monte Carlo samples for the ELBO (default 1)")
    e.add_argument("--iw-k", type=_positive_int, default=None,
                   help="also estimate log p(x) by importance sampling with K samples")
    e.add_argument("--batch-size", type=_positive_int, default=500, help="examples per batch (default 500)")
    e.add_argument("--seed", type=_nonneg_int, default=None,
                   help="seed of the evaluation noise (default: the run's seed, so K = 1 on the validation split "
                        "reproduces the last validation number of the history)")
    e.add_argument("--max-examples", type=_positive_int, default=None, help="evaluate only the first N examples")
    e.add_argument("--threads", type=_threads, default="auto",
                   help="BLAS threads: a number or auto (default; see train)")

    sub.add_parser("assignment", add_help=False,
                   help="instructors: 'assignment make DIR' writes student stubs, "
                        "'assignment grade FILE' grades them by gradient checks")
    return p


# ----------------------------------------------------------------------------------------------
# --preset (training/presets.py): its hooks, kept apart from the rest of the CLI (the third,
# the paper's evaluation after training, is in cli/train.py)
# ----------------------------------------------------------------------------------------------
def _preset_hook_parser(t: argparse.ArgumentParser, preset: str | None) -> None:
    add_preset_arguments(t)
    if preset:
        t.set_defaults(**cli_defaults(preset))   # the preset's values; flags given still win


def reparse_with_preset(a: argparse.Namespace, argv: list[str]) -> argparse.Namespace:
    """With ``--preset``, parse ``argv`` again on the preset's defaults (flags given still win)."""
    if getattr(a, "preset", None):
        a = build_parser(a.preset).parse_args(argv)
        check_preset_dataset(a.preset, a.dataset)
    return a


# ----------------------------------------------------------------------------------------------
# the model family (note 10), the convolutional VAE (note 14), learned priors (note 15): their flags
# ----------------------------------------------------------------------------------------------
def _add_family_flags(t: argparse.ArgumentParser) -> None:
    f = t.add_argument_group("model family (derivations/10_model_family.md)")
    f.add_argument("--model", choices=("vae", "vqvae", "conv"),
                   help="the VAE (default), a VQ-VAE, or the convolutional VAE (derivations/14_convolutions.md)")
    f.add_argument("--objective", choices=("elbo", "iwae"),
                   help="training objective: the ELBO (default) or the importance-weighted bound with --k samples")
    f.add_argument("--posterior", choices=("diag", "full"),
                   help="encoder covariance: diagonal (default) or full (Cholesky factor)")
    f.add_argument("--conditional", action="store_true", default=None,
                   help="conditional VAE: the one-hot label joins the encoder input and z (labelled data sets)")
    f.add_argument("--n-codes", type=_positive_int, help="VQ-VAE: code vectors per image (default 8)")
    f.add_argument("--code-dim", type=_positive_int, help="VQ-VAE: dimension of each code vector (default 4)")
    f.add_argument("--codebook-size", type=_positive_int, help="VQ-VAE: codebook entries K (default 32)")
    f.add_argument("--commitment", type=_nonneg_float, help="VQ-VAE: commitment weight (default 0.25)")
    f.add_argument("--channels", type=_hidden, help="--model conv: the encoder's convolution channels, mirrored "
                                                     "by the decoder's transposed convolutions (default 32,64)")
    f.add_argument("--kernel-size", type=_positive_int, help="--model conv: kernel size (default 4)")
    f.add_argument("--stride", type=_positive_int, help="--model conv: stride (default 2)")
    f.add_argument("--padding", type=_nonneg_int, help="--model conv: zero padding (default 1)")
    f.add_argument("--prior", type=_prior_spec, metavar="normal|mog:K|vamp:K",
                   help="p(z): the standard normal (default), a learned mixture of K Gaussians (mog:10) or a "
                        "VampPrior with K pseudo-inputs (vamp:500); derivations/15_learned_priors.md")


def _prior_spec(text: str) -> str:
    """argparse type of --prior: 'normal', 'mog:K' or 'vamp:K' (one-line error otherwise)."""
    from ..priors import parse_prior
    try:
        parse_prior(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).replace("prior must be", "expected")) from None
    return text
