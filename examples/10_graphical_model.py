"""The VAE's graphical model as a figure: z -> x (generative, solid) and x -> z (inference, dashed).

The standard plate diagram of Kingma & Welling (2014), Figure 1, drawn with matplotlib only:
the latent z and the observed x (shaded) inside a plate over the N data points, the
generative model p_theta(z) p_theta(x | z) as solid arrows, the variational approximation
q_phi(z | x) as a dashed arrow, and the global parameters phi, theta outside the plate.

    python examples/10_graphical_model.py                       # writes docs/figures/graphical_model.png
    python examples/10_graphical_model.py --out /tmp/fig        # writes /tmp/fig/graphical_model.png

Embedded in derivations/01_generative_model.md, section 1.1.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # run from a checkout
from numpyvae.cli.argtypes import ScriptParser, out_folder  # noqa: E402

DEFAULT_OUT = HERE.parent / "docs" / "figures"


def node(ax, xy, label, observed=False, r=0.42):
    ax.add_patch(Circle(xy, r, facecolor="0.82" if observed else "white", edgecolor="black", lw=1.6, zorder=2))
    ax.text(*xy, label, ha="center", va="center", fontsize=20, zorder=3)


def param(ax, xy, label):
    ax.plot(*xy, "ko", ms=5, zorder=3)
    ax.text(xy[0] - 0.18, xy[1], label, ha="right", va="center", fontsize=17)


def arrow(ax, a, b, dashed=False, rad=0.0, color="black"):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=18, lw=1.6, color=color,
                                 linestyle=(0, (5, 3)) if dashed else "-",
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0, zorder=1))


def draw():
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    z, x = (2.6, 3.0), (2.6, 1.0)
    node(ax, z, r"$z$")
    node(ax, x, r"$x$", observed=True)
    # generative: z -> x (solid), theta -> z, x
    arrow(ax, (z[0] + 0.08, z[1] - 0.42), (x[0] + 0.08, x[1] + 0.42))
    # inference: x -> z (dashed), curved to the left of the solid arrow
    arrow(ax, (x[0] - 0.3, x[1] + 0.3), (z[0] - 0.3, z[1] - 0.3), dashed=True, rad=-0.45, color="tab:blue")
    theta, phi = (4.6, 2.0), (0.5, 2.0)
    param(ax, (theta[0] + 0.35, theta[1]), "")
    ax.text(theta[0] + 0.55, theta[1], r"$\theta$", ha="left", va="center", fontsize=18)
    param(ax, phi, r"$\phi$")
    # the prior N(0, I) has no parameters here, so theta points at x only
    arrow(ax, (theta[0] + 0.3, theta[1] - 0.1), (x[0] + 0.42, x[1] + 0.05))
    arrow(ax, (phi[0] + 0.05, phi[1] + 0.1), (z[0] - 0.42, z[1] - 0.0), dashed=True, color="tab:blue")
    ax.add_patch(FancyBboxPatch((1.5, 0.25), 2.3, 3.55, boxstyle="round,pad=0.02,rounding_size=0.12",
                                fill=False, lw=1.3))
    ax.text(3.65, 0.38, r"$N$", ha="right", va="bottom", fontsize=15)
    ax.text(2.75, 2.0, r"$p_\theta(x\mid z)$", ha="left", va="center", fontsize=12)
    ax.text(2.0, 1.7, r"$q_\phi(z\mid x)$", ha="right", va="center", fontsize=12, color="tab:blue")
    ax.text(2.6, 3.95, r"$p(z) = \mathcal{N}(0, I)$", ha="center", va="bottom", fontsize=12)
    ax.set_xlim(-0.2, 5.6)
    ax.set_ylim(0.0, 4.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def main(argv=None):
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=out_folder, default=DEFAULT_OUT,
                   help="folder for graphical_model.png (default: docs/figures/)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    fig = draw()
    path = args.out / "graphical_model.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"[saved {path}]  ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
