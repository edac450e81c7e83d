"""IWAE against the VAE on MNIST (Burda, Grosse & Salakhutdinov 2016, Table 1's direction).

Trains three models with the same architecture (784-H-Z ReLU, Bernoulli decoder), the same
epochs, optimizer and seed: the VAE with K = 1, the VAE with K = 5 (the ELBO averaged over five
samples), and the IWAE with K = 5 (-log of the mean of five importance weights). Each is
evaluated on the same test images with the K = 5000 importance-sampled log p(x)
(numpyvae.log_likelihood) and by its active units (Cov_x E_q[z_u] > 0.01). Prints the table,
writes examples/output/11_iwae.txt and 11_iwae.png (sorted per-unit activity).

    python examples/11_iwae.py [--out DIR] [--epochs 5] [--hidden 200] [--z 20] [--n-test 1000]
"""
import time

import numpy as np
from _family_common import active_units, fit, load_labelled, out_dir, parser, save_figure, save_text, table

import matplotlib.pyplot as plt
import numpyvae as nv


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--z", type=int, default=20)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--n-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--k-eval", type=int, default=5000)
    p.add_argument("--data", choices=("auto", "mnist", "mnist-embedded"), default="auto")
    args = p.parse_args()
    out = out_dir(args)
    t0 = time.perf_counter()
    d, source = load_labelled(args.data, seed=args.seed)
    x_train = d.x_train[:args.n_train]
    x_test = (d.x_test if d.x_test is not None else d.x_val)[:args.n_test]
    print(f"data: {source} (fixed binarization), train {x_train.shape}, "
          f"test subset {x_test.shape}; 784-{args.hidden}-{args.z}, {args.epochs} epochs, "
          f"Adam 1e-3, batch 100, float32, seed {args.seed}")
    runs = [("VAE", "elbo", 1), ("VAE", "elbo", 5), ("IWAE", "iwae", 5)]
    rows, acts, lls = [], {}, {}
    for name, objective, k in runs:
        vae = nv.FamilyVAE(784, args.z, hidden=(args.hidden,), seed=args.seed, dtype=np.float32)
        label = f"{name} K={k}"
        losses, secs = fit(vae, x_train, args.epochs, k=k, objective=objective, label=label,
                           seed=args.seed)
        t1 = time.perf_counter()
        ll = nv.log_likelihood(vae, x_test, k=args.k_eval, rng=args.seed + 1)
        elbo = vae.forward(x_test, k=1, eps=None).elbo
        au, v = active_units(vae, x_test)
        acts[label] = v
        lls[label] = ll
        rows.append({"model": label, "train loss": f"{losses[-1]:.2f}",
                     "test ELBO": f"{elbo:.2f}", f"log p(x), K={args.k_eval}": f"{ll.mean():.2f}",
                     "+-": f"{ll.std() / np.sqrt(len(ll)):.2f}", "active units": f"{au}/{args.z}",
                     "train s": f"{secs:.0f}", "eval s": f"{time.perf_counter() - t1:.0f}"})
        print(f"  {label}: log p(x) {ll.mean():.2f}, active units {au}", flush=True)
    base = lls["VAE K=1"]
    pairs = [{"difference": f"{lab} - VAE K=1", "mean log p(x) gain": f"{(ll - base).mean():.2f}",
              "paired s.e.": f"{(ll - base).std() / np.sqrt(len(ll)):.2f}"}
             for lab, ll in lls.items() if lab != "VAE K=1"]
    d = lls["IWAE K=5"] - lls["VAE K=5"]
    pairs.append({"difference": "IWAE K=5 - VAE K=5", "mean log p(x) gain": f"{d.mean():.2f}",
                  "paired s.e.": f"{d.std() / np.sqrt(len(d)):.2f}"})
    txt = table(rows, list(rows[0])) + "\n\n" + table(pairs, list(pairs[0]))
    txt += ("\n(+- : standard error of the mean over the test images; the same images and the "
            "same evaluation seed for every model)")
    print(txt)
    save_text(out / "11_iwae.txt", txt)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, v in acts.items():
        ax.semilogy(np.arange(1, len(v) + 1), np.sort(v)[::-1], "o-", ms=3, label=label)
    ax.axhline(1e-2, color="grey", ls=":", label="active threshold 0.01")
    ax.set_xlabel("latent unit (sorted)")
    ax.set_ylabel(r"Cov$_x$ E$_q$[$z_u$]")
    ax.set_title("Unit activity: VAE K=1, VAE K=5, IWAE K=5")
    ax.legend(fontsize=8)
    save_figure(fig, out / "11_iwae.png", t0)


if __name__ == "__main__":
    main()
