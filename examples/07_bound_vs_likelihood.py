"""The bound versus the likelihood on MNIST (lecture notes, "Caveats").

Trains the classic 784-400-20 ReLU / Bernoulli VAE with Adam for a few epochs on fixed-binarized
MNIST (the shared 50k training images when ../shared/data sits beside the repository or
NUMPYVAE_DATA points at it, else the packaged 9000), then compares, on N validation images, the
ELBO that training maximised with the importance-sampled log-likelihood estimate for
K = 1, 10, 100, 1000, 5000. Prints the table, the gap, and timings.

    python examples/07_bound_vs_likelihood.py [--out examples/output] [--epochs 3] [--n-eval 1000]
"""

import time

import numpy as np
from _theory_common import HERE, load_binary_mnist, out_dir, parser, positive_int, save_figure, save_text, train_vae

import matplotlib.pyplot as plt
from numpyvae.theory.estimators import evaluate_bounds, format_table


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--n-eval", type=positive_int, default=1000)
    p.add_argument("--data", choices=("auto", "mnist", "mnist-embedded"), default="auto")
    p.add_argument("--ks", type=positive_int, nargs="+", default=[1, 10, 100, 1000, 5000])
    p.add_argument("--retrain", action="store_true", help="ignore a cached trained model")
    args = p.parse_args()
    out = out_dir(args)
    t0 = time.perf_counter()

    source = args.data
    if source == "auto":
        source = "mnist" if (HERE.parent.parent / "shared" / "data" / "mnist").is_dir() else "mnist-embedded"
    x_train, x_val = load_binary_mnist(source, seed=args.seed)
    print(f"data: {source}, fixed binarization, train {x_train.shape}, validation {x_val.shape}")
    cache = out / f"theory_{source}_400_20_e{args.epochs}_s{args.seed}.npz"
    if args.retrain and cache.exists():
        cache.unlink()
    vae, t_train = train_vae(x_train, hidden=(400,), z_dim=20, epochs=args.epochs, seed=args.seed,
                             cache=cache)
    if t_train:
        print(f"trained 784-400-20 for {args.epochs} epochs (batch 100, Adam 1e-3, float32) in {t_train:.1f} s")

    x = x_val[: args.n_eval]
    t1 = time.perf_counter()
    rows = evaluate_bounds(vae, x, ks=tuple(args.ks), rng=args.seed, keep_values=True)
    t_eval = time.perf_counter() - t1
    elbo = rows[0]["values"]
    ll = rows[-1]["values"]
    for r in rows:
        d = ll - r["values"]
        r[f"K={args.ks[-1]} minus this"] = float(d.mean())
        r["s.e.(paired)"] = float(d.std(ddof=1) / np.sqrt(len(d)))
    table = format_table(rows)
    print(f"\n{len(x)} validation images; nats per image (the ELBO row uses the closed-form KL, 100 samples)")
    print(table)
    gap = ll - elbo
    summary = (f"ELBO {elbo.mean():.2f}, log p(x) estimate (K={args.ks[-1]}) {ll.mean():.2f}: "
               f"gap {gap.mean():.2f} nats (median {np.median(gap):.2f}, 5-95% {np.percentile(gap, 5):.2f}"
               f"-{np.percentile(gap, 95):.2f}); evaluation took {t_eval:.1f} s "
               f"(K={args.ks[-1]} alone: {rows[-1]['seconds']:.1f} s)")
    print(summary)
    save_text(out / "07_bound_vs_likelihood.txt", table + "\n" + summary)

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    ks = [r["k"] for r in rows[1:]]
    ax[0].errorbar(ks, [r[f"K={args.ks[-1]} minus this"] for r in rows[1:]],
                   yerr=[2 * r["s.e.(paired)"] for r in rows[1:]], fmt="o-", capsize=3,
                   label="K-sample bound")
    ax[0].axhline(gap.mean(), color="C2", ls="--", label=f"ELBO ({gap.mean():.2f} nats below)")
    ax[0].axhline(0, color="k", lw=0.8)
    ax[0].set_xscale("log")
    ax[0].set_xlabel("K")
    ax[0].set_ylabel(f"estimate at K={args.ks[-1]} minus bound (nats)")
    ax[0].set_title(f"MNIST 784-400-20, {len(x)} validation images")
    ax[0].legend()
    ax[1].scatter(elbo, gap, s=6, alpha=0.6)
    ax[1].set_xlabel("ELBO of the image (nats)")
    ax[1].set_ylabel(f"log p(x) estimate (K={args.ks[-1]}) - ELBO (nats)")
    ax[1].set_title("the bound is looser on images the model fits worse")
    save_figure(fig, out / "07_bound_vs_likelihood.png", t0)


if __name__ == "__main__":
    main()
