"""A simple prior is not a restriction: N(0, I) pushed through g(z) = z/10 + z/||z|| is a ring.

Doersch's tutorial (section 2.1) makes the point that a standard normal prior costs a VAE no
generality, because a flexible enough decoder can map it onto whatever distribution the data
need. His example in two dimensions: g(z) = z/10 + z/||z|| sends the Gaussian blob onto a thin
ring of radius about 1. This script draws N(0, I) samples, pushes them through g, and plots both
panels, with the radius histogram of the ring beside the theory: ||g(z)|| = 1 + ||z||/10, where
||z|| has the chi distribution with 2 degrees of freedom (Rayleigh), so the ring has mean radius
1 + sqrt(pi/2)/10 = 1.125 and standard deviation sqrt(2 - pi/2)/10 = 0.0655.

    python examples/19_simple_prior.py                      # writes docs/figures/simple_prior_ring.png
    python examples/19_simple_prior.py --out /tmp/fig --n 2000

Prints the measured mean and standard deviation of the radius against the theory.
Embedded in derivations/01_generative_model.md, section 1.11, eq. (1.11).
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
try:  # run from a checkout without installing the package
    import numpyvae  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent))
# the numpyvae command's argument checks: one line and exit code 2 for a bad value
from numpyvae.cli.argtypes import ScriptParser, out_folder  # noqa: E402

DEFAULT_OUT = HERE.parent / "docs" / "figures"


def ring_map(z):
    """Doersch's g(z) = z/10 + z/||z||, row by row: z (n, 2) -> (n, 2)."""
    r = np.linalg.norm(z, axis=1, keepdims=True)
    return z / 10 + z / r


def radius_theory():
    """Mean and standard deviation of ||g(z)|| = 1 + ||z||/10 for z ~ N(0, I_2) (Rayleigh ||z||)."""
    return 1 + np.sqrt(np.pi / 2) / 10, np.sqrt(2 - np.pi / 2) / 10


def draw(z, x):
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.7))
    ax[0].scatter(z[:, 0], z[:, 1], s=2, alpha=0.5)
    ax[0].set_title("z ~ N(0, I)")
    ax[1].scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, color="tab:orange")
    ax[1].set_title("g(z) = z/10 + z/||z||")
    for a in ax[:2]:
        a.set_xlim(-3.2, 3.2)
        a.set_ylim(-3.2, 3.2)
        a.set_aspect("equal")
    r = np.linalg.norm(x, axis=1)
    ax[2].hist(r, bins=60, density=True, alpha=0.6, color="tab:orange", label="||g(z)||")
    t = np.linspace(1.0, r.max(), 200)
    s = 10 * (t - 1)                                  # ||z|| = 10 (||g|| - 1), Rayleigh density x 10
    ax[2].plot(t, 10 * s * np.exp(-s ** 2 / 2), "k", lw=1.2, label="theory")
    ax[2].set_title("radius of the ring")
    ax[2].legend()
    fig.tight_layout()
    return fig


def main(argv=None):
    p = ScriptParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=5000, help="number of prior samples (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=out_folder, default=DEFAULT_OUT, help="folder for simple_prior_ring.png")
    args = p.parse_args(argv)
    if args.n < 2:
        p.error(f"--n must be at least 2, got {args.n}")
    z = np.random.default_rng(args.seed).normal(size=(args.n, 2))
    x = ring_map(z)
    r = np.linalg.norm(x, axis=1)
    mean, sd = radius_theory()
    print(f"radius of g(z): mean {r.mean():.4f} (theory {mean:.4f}), sd {r.std():.4f} (theory {sd:.4f})")
    print(f"fraction of g(z) with radius in [1, 1.3]: {np.mean((r >= 1) & (r <= 1.3)):.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    fig = draw(z, x)
    path = args.out / "simple_prior_ring.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
