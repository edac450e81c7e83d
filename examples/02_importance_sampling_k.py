"""The importance-sampled bound log (1/K) sum_k p(x, z_k) / q(z_k | x) as K grows.

Left: a linear-Gaussian VAE, where log p(x) is known exactly: the bound climbs from the ELBO
(K = 1) to the exact value and stays below it. Right: a small Bernoulli VAE trained on the
packaged MNIST images (784-200-10, 2 epochs), where the large-K value is our best estimate of
log p(x) (Prabhu, "importance sampling"; lecture notes, "Caveats").

    python examples/02_importance_sampling_k.py [--out examples/output]
"""

import time

import numpy as np
from _theory_common import load_binary_mnist, nv, out_dir, parser, positive_int, save_figure, save_text, train_vae

import matplotlib.pyplot as plt
from numpyvae.theory.estimators import evaluate_bounds, format_table
from numpyvae.theory.linear_gaussian import LinearGaussian

KS = (1, 3, 10, 30, 100, 300, 1000, 3000)


def linear_case(rng):
    truth = LinearGaussian(rng.normal(size=(6, 3)), rng.normal(size=6), 0.2)
    data = truth.sample(2000, rng)
    vae = nv.VAE(6, 3, hidden=(), likelihood="gaussian", c=0.2, seed=1)
    opt = nv.optim.Adam(lr=0.02)
    for _ in range(600):  # a short run: the encoder is still imperfect, so the gap is visible
        vae.forward(data[rng.choice(2000, 100, replace=False)])
        vae.backward()
        opt.step(vae.flat_params, vae.flat_grads)
    x = truth.sample(300, rng)
    rows = evaluate_bounds(vae, x, ks=KS, rng=rng, keep_values=True)
    exact = LinearGaussian.from_vae(vae).log_marginal(x)
    return rows, exact


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n-images", type=positive_int, default=100)
    args = p.parse_args()
    out = out_dir(args)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    rows_lin, exact_pe = linear_case(rng)
    exact = exact_pe.mean()
    print(f"linear-Gaussian VAE (6 -> 3), 300 test points; exact mean log p(x) = {exact:.4f}")
    for r in rows_lin:
        d = exact_pe - r["values"]
        r["exact - mean"] = float(d.mean())
        r["s.e.(paired)"] = float(d.std(ddof=1) / np.sqrt(len(d)))
    t_lin = format_table(rows_lin)
    print(t_lin)

    x_train, x_val = load_binary_mnist("mnist-embedded", seed=args.seed)
    print("\ntraining a 784-200-10 Bernoulli VAE on 9000 packaged MNIST images ...")
    vae, _ = train_vae(x_train, hidden=(200,), z_dim=10, epochs=2, seed=args.seed,
                       cache=out / "theory_mnist_200_10.npz")
    x = x_val[: args.n_images]
    rows_mn = evaluate_bounds(vae, x, ks=KS, rng=rng, keep_values=True)
    ref = rows_mn[-1]["values"]
    for r in rows_mn:
        d = ref - r["values"]
        r[f"K={KS[-1]} - mean"] = float(d.mean())
        r["s.e.(paired)"] = float(d.std(ddof=1) / np.sqrt(len(d)))
    print(f"MNIST, {len(x)} validation images")
    t_mn = format_table(rows_mn)
    print(t_mn)
    save_text(out / "02_importance_sampling_k.txt",
              f"linear (exact {exact:.4f})\n{t_lin}\n\nMNIST {len(x)} val images\n{t_mn}")

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = ((ax[0], rows_lin, "exact - mean", "exact log p(x) minus bound",
               "linear-Gaussian VAE: exact log p(x) known"),
              (ax[1], rows_mn, f"K={KS[-1]} - mean", f"bound at K={KS[-1]} minus bound",
               f"MNIST VAE 784-200-10, {len(x)} val images"))
    for a, rows, key, ylabel, title in panels:
        ks = [r["k"] for r in rows[1:]]
        gap = np.array([r[key] for r in rows[1:]])
        se = np.array([r["s.e.(paired)"] for r in rows[1:]])
        a.errorbar(ks, gap, yerr=2 * se, fmt="o-", capsize=3,
                   label="K-sample bound (mean over x, +-2 paired s.e.)")
        a.axhline(rows[0][key], color="C2", ls="--", label="ELBO (closed-form KL)")
        a.axhline(0.0, color="k", lw=0.8)
        a.set_xscale("log")
        a.set_xlabel("K (importance samples)")
        a.set_ylabel(ylabel + " (nats)")
        a.set_title(title)
        a.legend(loc="center right")
    save_figure(fig, out / "02_importance_sampling_k.png", t0)


if __name__ == "__main__":
    main()
