"""Conditional VAE on MNIST or Fashion-MNIST (Sohn, Lee & Yan 2015; Doersch's tutorial, section 4).

q(z|x, y) and p(x|z, y) read the one-hot label beside x and beside z. Trains the CVAE and,
for comparison, the unconditional VAE with the same layers (784-H-Z ReLU, Bernoulli, Adam,
same epochs); prints their test ELBOs and KLs. Writes two figures:
13_conditional_style.png, the z of a few test images (columns, their "style") decoded with
every label (rows), and 13_conditional_grid.png, one label decoded across a grid of z.

    python examples/13_conditional.py [--out DIR] [--data mnist|fashion-mnist] [--epochs 10]
"""
import time

import numpy as np
from _family_common import fit, load_labelled, out_dir, parser, save_figure, save_text, table

import matplotlib.pyplot as plt
import numpyvae as nv


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--z", type=int, default=2)
    p.add_argument("--grid-label", type=int, default=8)
    p.add_argument("--data", choices=("auto", "mnist", "fashion-mnist", "mnist-embedded"),
                   default="auto")
    args = p.parse_args()
    out = out_dir(args)
    t0 = time.perf_counter()
    d, source = load_labelled(args.data, seed=args.seed)
    x_test = d.x_test if d.x_test is not None else d.x_val
    y_test = (d.y_test if d.x_test is not None else d.y_val).astype(np.int64)
    y_train = d.y_train.astype(np.int64)
    print(f"data: {source}, train {d.x_train.shape}, test {x_test.shape}; 784-{args.hidden}-"
          f"{args.z}, {args.epochs} epochs, Adam 1e-3, batch 100, float32, seed {args.seed}")
    rows = []
    eps = np.random.default_rng(args.seed + 3).standard_normal((1, len(x_test), args.z))
    models = {}
    for name, n_classes in (("VAE", None), ("CVAE", 10)):
        vae = nv.FamilyVAE(784, args.z, hidden=(args.hidden,), n_classes=n_classes, seed=args.seed,
                     dtype=np.float32)
        losses, secs = fit(vae, d.x_train, args.epochs, y=y_train if n_classes else None,
                           seed=args.seed, label=name)
        t = vae.forward(x_test, eps=eps.astype(np.float32), y=y_test if n_classes else None)
        rows.append({"model": name, "test ELBO": f"{t.elbo:.2f}", "recon": f"{t.recon:.2f}",
                     "KL": f"{t.kl:.2f}", "train s": f"{secs:.0f}"})
        models[name] = vae
    txt = table(rows, list(rows[0]))
    print(txt)
    save_text(out / "13_conditional.txt", txt)
    cvae = models["CVAE"]
    # style: z of eight test images (encoded with their own labels), decoded with every label
    pick = np.arange(8)
    mu, _ = cvae.encode(x_test[pick], y_test[pick])
    h, w = d.image_shape
    fig, ax = plt.subplots(11, 8, figsize=(6.4, 8.8))
    for j in range(8):
        ax[0, j].imshow(x_test[pick[j]].reshape(h, w), cmap="gray")
        for c in range(10):
            ax[c + 1, j].imshow(cvae.decode_mean(mu[j:j + 1], y=c).reshape(h, w), cmap="gray")
    for a in ax.ravel():
        a.set_xticks([]), a.set_yticks([])
    ax[0, 0].set_ylabel("input", fontsize=7)
    for c in range(10):
        ax[c + 1, 0].set_ylabel(f"y={c}", fontsize=7)
    fig.suptitle("Same z (column: a test image's style), label changed row by row", fontsize=9)
    save_figure(fig, out / "13_conditional_style.png", t0)
    # grid: one label across a grid of the first two z coordinates (others at 0)
    n = 12
    g = np.linspace(-2.5, 2.5, n)
    zz = np.zeros((n * n, args.z))
    zz[:, 0] = np.repeat(g, n)
    zz[:, 1 % args.z] = np.tile(g, n)
    imgs = cvae.decode_mean(zz, y=args.grid_label).reshape(n, n, h, w)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(imgs.transpose(0, 2, 1, 3).reshape(n * h, n * w), cmap="gray")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(f"y = {args.grid_label} fixed, z over [-2.5, 2.5]^2", fontsize=9)
    save_figure(fig, out / "13_conditional_grid.png", t0)


if __name__ == "__main__":
    main()
