"""PCA, a linear autoencoder and a ReLU autoencoder on MNIST, at equal code sizes.

For each code size d this fits
  * PCA (SVD of the centred training images),
  * a linear autoencoder (hidden=(), identity maps; its optimum spans the same
    subspace as PCA, so it can at best tie with PCA),
  * a ReLU autoencoder (one hidden layer of 256 ReLUs each way, linear code,
    sigmoid output),
on the packaged MNIST (9000 train / 1000 validation images, grey levels in
[0, 1]) and prints the reconstruction error per pixel on both splits. A figure
shows validation digits next to their three reconstructions for every d.

    python examples/08_autoencoders_pca.py                 # d = 2 10 32, ~20-30 s
    python examples/08_autoencoders_pca.py --codes 2 10 --epochs 5 --out /tmp/ae

Writes <out>/08_autoencoders_pca.png and <out>/08_autoencoders_pca.txt (the table).
Derivations: derivations/11_autoencoders.md, eqs. (11.1) and (11.2).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# One BLAS thread unless the caller says otherwise: the 128-row matmuls here gain
# little from threads, and on a shared machine threaded OpenBLAS was ~9x slower
# (286 s against 31 s for this script). Must be set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout
from numpyvae.theory.autoencoders import Autoencoder, fit, pca, pca_reconstruct  # noqa: E402
from numpyvae.data import load_dataset  # noqa: E402
from numpyvae.cli.argtypes import ScriptParser, nonneg_int, out_folder, positive_int  # noqa: E402


def mse_per_pixel(x, x_hat):
    """Mean over images and pixels of the squared error (the AE loss / 784)."""
    return float(np.mean((np.asarray(x, np.float64) - x_hat) ** 2))


def main(argv=None):
    ap = ScriptParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=out_folder, default=str(Path(__file__).resolve().parent / "output"),
                    help="folder for the figure and the table (default: examples/output/)")
    ap.add_argument("--codes", type=positive_int, nargs="+", default=[2, 10, 32], help="code sizes d")
    ap.add_argument("--epochs", type=positive_int, default=10, help="training epochs per autoencoder")
    ap.add_argument("--batch-size", type=positive_int, default=128)
    ap.add_argument("--seed", type=nonneg_int, default=0)
    ap.add_argument("--n-show", type=positive_int, default=8, help="validation digits in the figure")
    args = ap.parse_args(argv)

    t_start = time.time()
    data = load_dataset("mnist-embedded", seed=args.seed)
    x_tr, x_va = data.x_train, data.x_val                   # float32, (9000, 784), (1000, 784)
    D = data.x_dim
    show = x_va[:args.n_show]

    # one SVD serves every d: the top-d components are the first d columns
    mean, comps_all, _ = pca(x_tr, max(args.codes))
    print(f"PCA done after {time.time() - t_start:5.1f} s", flush=True)
    rows, recons = [], {}
    for d in args.codes:
        comps = comps_all[:, :d]
        models = {"PCA": lambda x, c=comps: pca_reconstruct(x, mean, c)}
        lin = Autoencoder(D, d, seed=args.seed, dtype=np.float32)
        fit(lin, x_tr, epochs=args.epochs, batch_size=args.batch_size, lr=3e-3, seed=args.seed)
        models["linear AE"] = lin.reconstruct
        relu = Autoencoder(D, d, hidden=(256,), activation="relu", code_activation="identity",
                           out_activation="sigmoid", seed=args.seed, dtype=np.float32)
        fit(relu, x_tr, epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, seed=args.seed)
        models["ReLU AE"] = relu.reconstruct
        for name, rec in models.items():
            rows.append((d, name, mse_per_pixel(x_tr, rec(x_tr)), mse_per_pixel(x_va, rec(x_va))))
            recons[(d, name)] = rec(show)
        print(f"d = {d:>3}: done after {time.time() - t_start:5.1f} s", flush=True)

    pca_val = {d: v for d, n, _, v in rows if n == "PCA"}
    lines = [f"MNIST (packaged t10k: 9000 train / 1000 val), {args.epochs} epochs of Adam "
             f"per autoencoder, seed {args.seed}",
             "reconstruction error = mean squared error per pixel (grey levels in [0, 1]); "
             "x 784 = the AE loss",
             "",
             f"{'d':>3}  {'model':<10} {'train MSE':>10} {'val MSE':>10} {'val / PCA val':>14}",
             "-" * 52]
    for d, name, tr, va in rows:
        lines.append(f"{d:>3}  {name:<10} {tr:>10.5f} {va:>10.5f} {va / pca_val[d]:>14.3f}")
    lines.append(f"\ntotal time {time.time() - t_start:.1f} s")
    table = "\n".join(lines)
    print(table)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "08_autoencoders_pca.txt").write_text(table + "\n", encoding="utf-8")
    fig_path = out / "08_autoencoders_pca.png"
    draw(show, recons, args.codes, pca_val, rows, fig_path, data.image_shape)
    print(f"wrote {fig_path} and {out / '08_autoencoders_pca.txt'}")


def draw(show, recons, codes, pca_val, rows, path, shape):
    """One row of originals, then for each d a row per model, digits side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = ["PCA", "linear AE", "ReLU AE"]
    val = {(d, n): v for d, n, _, v in rows}
    n = len(show)
    n_rows = 1 + len(codes) * len(names)
    fig = Figure(figsize=(1.0 * n + 2.4, 1.0 * n_rows + 0.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n, squeeze=False)
    row_imgs = [("original", show)]
    for d in codes:
        row_imgs += [(f"{name}, d={d}\nMSE {val[(d, name)]:.4f}", recons[(d, name)])
                     for name in names]
    for r, (label, imgs) in enumerate(row_imgs):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(imgs[c].reshape(shape), 0, 1), cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("MNIST validation digits and reconstructions (val MSE per pixel)", fontsize=11)
    fig.subplots_adjust(left=0.2, right=0.99, top=0.96, bottom=0.01, wspace=0.05, hspace=0.08)
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
