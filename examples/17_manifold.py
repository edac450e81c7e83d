"""The manifold seen: the encoder as a chart of a Swiss roll, the decoder as its inverse, and the tears.

The data lie near a 2-D surface rolled up in 3-D (the Swiss roll: intrinsic coordinates t, the
angle along the spiral, and h, the height), standardised, with a little isotropic noise. Two VAEs
with a Gaussian decoder (fixed variance c) train through the package's Trainer:

  * Z = 2, the manifold's own dimension: the encoder mean mu(x) is a chart (note 17, eq. (17.1)),
    the decoder mean maps the latent plane back onto the roll (17.2). The figure colours the chart
    by t and h, draws the decoded image of a latent grid on the unrolled sheet (each decoded point
    placed at the nearest point of the roll; points farther than 0.1 from it are off the roll),
    and marks where the chart tears: points whose latent distance to their manifold neighbours is
    many times the typical one (17.3), and folds: points far apart on the roll but close in the chart.
  * Z = 6, more room than the manifold needs: how many dimensions stay active (Var_x mu_j > 0.01,
    note 9, eq. (9.3)) and how the KL spreads over them, against the true dimension 2.

    python examples/17_manifold.py                  # 2-5 minutes on one core (two models, 200 epochs)
    python examples/17_manifold.py --epochs 40 --out /tmp/manifold

Writes <out>/17_manifold.png and <out>/17_manifold.txt.
Derivations: derivations/17_manifold.md, eqs. (17.1)-(17.4).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
from _theory_common import nv, out_dir, parser, save_text  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
from numpyvae.training.trainer import TrainConfig, Trainer  # noqa: E402


#: the standardisation of every roll in this example (the noise-free roll's mean and spread)
_T, _H = np.repeat(np.linspace(1.5 * np.pi, 4.5 * np.pi, 400), 50), np.tile(np.linspace(0.0, 15.0, 50), 400)
_GRID = np.stack([_T * np.cos(_T), _H, _T * np.sin(_T)], 1)
x_mean, x_scale = _GRID.mean(0), _GRID.std(0).mean()


def swiss_roll_points(t, h, mean, spread):
    """The roll at intrinsic coordinates (t, h), standardised: (x (n, 3), t, h)."""
    x = np.stack([t * np.cos(t), h, t * np.sin(t)], axis=1)
    return (x - mean) / spread, t, h


def swiss_roll(n, rng, noise):
    """n points near the Swiss roll: (x (n, 3) standardised, t (n,), h (n,))."""
    x, t, h = swiss_roll_points(rng.uniform(1.5 * np.pi, 4.5 * np.pi, n), rng.uniform(0.0, 15.0, n),
                                x_mean, x_scale)
    return x + noise * rng.standard_normal(x.shape), t, h


def arclength(t):
    """Length along the spiral r = t from 0 to t (the chart's natural first coordinate)."""
    return 0.5 * (t * np.sqrt(1 + t * t) + np.arcsinh(t))


def fit(x, z_dim, c, epochs, seed, x_val):
    vae = nv.VAE(3, z_dim, hidden=(128, 128), likelihood="gaussian", activation="tanh", c=c, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=100, lr=2e-3, seed=seed, progress=False)
    Trainer(vae, x, x_val, cfg).fit()
    return vae


def tears_and_folds(mu, t, h, scale, k=8, tear=4.0):
    """Chart distortion at each point (17.3): the largest ratio latent / intrinsic distance to its
    k nearest manifold neighbours, over the median ratio; and folds: pairs within the latent
    neighbourhood whose intrinsic distance is far beyond it."""
    u = np.stack([arclength(t), h], 1) / scale                # intrinsic coordinates, in isometric units
    d_int = np.linalg.norm(u[:, None] - u[None], axis=-1)
    d_lat = np.linalg.norm(mu[:, None] - mu[None], axis=-1)
    np.fill_diagonal(d_int, np.inf)
    nb = np.argsort(d_int, axis=1)[:, :k]
    rows = np.arange(len(u))[:, None]
    ratio = d_lat[rows, nb] / d_int[rows, nb]
    stretch = ratio.max(1) / np.median(ratio)
    torn = stretch > tear
    # folds: latent neighbours (k nearest in the chart) that are far on the manifold
    np.fill_diagonal(d_lat, np.inf)
    lat_nb = np.argsort(d_lat, axis=1)[:, :k]
    typical = np.median(d_int[rows, nb])
    folded = (d_int[rows, lat_nb] > 10 * typical).any(1)
    return torn, folded, stretch


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=200, help="training epochs per model (default 200)")
    p.add_argument("--n", type=int, default=4000, help="training points (default 4000)")
    p.add_argument("--noise", type=float, default=0.03, help="std of the isotropic noise (default 0.03)")
    p.add_argument("--c", type=float, default=0.01, help="decoder variance (default 0.01)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.n < 200 or not args.noise >= 0 or not args.c > 0:
        p.error("--epochs must be >= 1, --n >= 200, --noise >= 0 and --c > 0")
    t0 = time.perf_counter()
    out = out_dir(args)
    rng = np.random.default_rng(args.seed)
    x, t, h = swiss_roll(args.n, rng, args.noise)
    xv, tv, hv = swiss_roll(1000, rng, args.noise)
    scale = x_scale                 # intrinsic distances in the units of the standardised x

    vae2 = fit(x, 2, args.c, args.epochs, args.seed, xv)
    vae6 = fit(x, 6, args.c, args.epochs, args.seed, xv)
    mu2, _ = vae2.encode(xv)
    mu6, lv6 = vae6.encode(xv)
    torn, folded, stretch = tears_and_folds(mu2, tv, hv, scale)
    kl_dim = 0.5 * np.mean(mu6 ** 2 + np.exp(lv6) - lv6 - 1, axis=0)
    act = mu6.var(0)
    n_active = int(np.sum(act > 0.01))
    recon2 = float(np.mean(np.sum((vae2.reconstruct(xv) - xv) ** 2, 1)))
    recon6 = float(np.mean(np.sum((vae6.reconstruct(xv) - xv) ** 2, 1)))

    lines = [f"Swiss roll (2-D surface in 3-D), {args.n} training / 1000 validation points, noise std {args.noise}, "
             f"Gaussian decoder c = {args.c}, MLP 3-128-128-Z tanh, {args.epochs} epochs of Adam (lr 2e-3), "
             f"seed {args.seed}.",
             f"Z = 2 chart: {100 * torn.mean():.1f}% of validation points sit on a tear (a neighbour {4:g}x "
             f"farther in the chart than typical), {100 * folded.mean():.1f}% on a fold (a chart neighbour "
             f"far away on the roll); mean squared reconstruction error {recon2:.4f}.",
             f"Z = 6: active dimensions (Var_x mu_j > 0.01) {n_active} of 6 against the manifold's 2; "
             f"mean squared reconstruction error {recon6:.4f}.",
             "  KL per dimension (nats): " + ", ".join(f"{v:.2f}" for v in kl_dim),
             "  Var_x mu_j:              " + ", ".join(f"{v:.3f}" for v in act)]
    table = "\n".join(lines)
    print(table)
    save_text(out / "17_manifold.txt", table)

    # the roll unrolled: arclength s and height h, in the standardised units of x
    s_of = arclength(tv) / scale
    dense_t = rng.uniform(1.5 * np.pi, 4.5 * np.pi, 20000)
    dense_h = rng.uniform(0.0, 15.0, 20000)
    dense, _, _ = swiss_roll_points(dense_t, dense_h, x_mean, x_scale)

    def unroll(points):
        """Nearest point of the noise-free roll -> (s, h, distance to the roll)."""
        d2 = ((points[:, None, :] - dense[None]) ** 2).sum(-1)
        i = d2.argmin(1)
        return arclength(dense_t[i]) / scale, dense_h[i] / scale, np.sqrt(d2[np.arange(len(points)), i])

    fig = plt.figure(figsize=(16, 9.5))
    col_t = dict(c=tv, cmap="viridis", s=5)
    ax = fig.add_subplot(2, 3, 1, projection="3d")
    ax.scatter(xv[:, 0], xv[:, 2], xv[:, 1], **col_t)
    ax.set_title("data: a 2-D sheet rolled up in 3-D\n(colour = t, the position along the roll)", fontsize=10)
    ax.view_init(elev=20, azim=-70)

    ax = fig.add_subplot(2, 3, 2)
    ax.scatter(mu2[:, 0], mu2[:, 1], **col_t)
    ax.scatter(mu2[torn, 0], mu2[torn, 1], facecolors="none", edgecolors="red", s=30, lw=0.8, label="tear")
    ax.scatter(mu2[folded, 0], mu2[folded, 1], marker="x", c="black", s=20, lw=0.8, label="fold")
    ax.set_title("the chart: encoder means mu(x), Z = 2 (colour = t)", fontsize=10)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.legend(fontsize=8, loc="best")
    ax.set_aspect("equal", adjustable="datalim")

    ax = fig.add_subplot(2, 3, 3)
    ax.scatter(mu2[:, 0], mu2[:, 1], c=hv, cmap="plasma", s=5)
    ax.set_title("the same chart, colour = h (the height)", fontsize=10)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_aspect("equal", adjustable="datalim")

    ax = fig.add_subplot(2, 3, 4)
    fine = np.linspace(-2.5, 2.5, 201)
    off_roll = 0
    for g in np.linspace(-2.5, 2.5, 11):
        for fixed, z in ((0, np.stack([np.full_like(fine, g), fine], 1)),
                         (1, np.stack([fine, np.full_like(fine, g)], 1))):
            su, hu, dist = unroll(vae2.decode_mean(z))
            on = dist < 0.1
            off_roll += int((~on).sum())
            colour = "tab:blue" if fixed == 0 else "tab:orange"
            ax.plot(np.where(on, su, np.nan), np.where(on, hu, np.nan), lw=0.9, color=colour)
    ax.set_xlabel("s, arclength along the roll (unrolled)")
    ax.set_ylabel("h, height")
    ax.set_title("the inverse map on the unrolled sheet: decoded grid lines\n(blue: z[0] fixed, orange: z[1] fixed; "
                 f"{100 * off_roll / (2 * 11 * 201):.0f}% of the grid decodes off the roll, not drawn)", fontsize=9)

    ax = fig.add_subplot(2, 3, 5)
    ax.scatter(s_of[~torn & ~folded], hv[~torn & ~folded] / scale, c="0.75", s=4)
    ax.scatter(s_of[torn], hv[torn] / scale, c="red", s=10, label="tear")
    ax.scatter(s_of[folded], hv[folded] / scale, c="black", marker="x", s=12, label="fold")
    ax.set_xlabel("s, arclength along the roll (unrolled)")
    ax.set_ylabel("h, height")
    ax.set_title("where the chart tears (red) and folds (x), on the unrolled sheet", fontsize=10)
    ax.legend(fontsize=8)

    ax = fig.add_subplot(2, 3, 6)
    ax.bar(np.arange(6), kl_dim, color=["tab:blue" if a > 0.01 else "tab:red" for a in act])
    ax.set_xlabel("latent dimension j (Z = 6 model)")
    ax.set_ylabel("mean KL(q(z_j|x) || N(0,1)), nats")
    ax.set_title(f"Z = 6: {n_active} active dimensions (blue) against the true 2", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "17_manifold.png", dpi=110)
    plt.close(fig)
    print(f"[saved {out / '17_manifold.png'}]  ({time.perf_counter() - t0:.1f} s in all)")


if __name__ == "__main__":
    main()
