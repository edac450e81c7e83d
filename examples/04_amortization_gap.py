"""Amortized versus per-example inference: how much ELBO does the encoder leave behind?

For a trained MNIST VAE (784-200-10) the decoder is frozen and a separate Gaussian q_i is
fitted to each of N validation images by Adam on its own ELBO, starting from the encoder's
q(z|x_i) (Prabhu, "Amortized Inference"). With an importance-sampled log p(x) the total gap
splits into an approximation gap (best diagonal Gaussian vs posterior) and an amortization
gap (encoder vs best diagonal Gaussian). A linear-Gaussian VAE, where everything is exact,
is shown for comparison.

    python examples/04_amortization_gap.py [--out examples/output] [--n-images 100]
"""

import time

import numpy as np
from _theory_common import load_binary_mnist, nv, out_dir, parser, positive_int, save_figure, save_text, train_vae

import matplotlib.pyplot as plt
from numpyvae.theory.amortization import amortization_gap, fit_local_posterior
from numpyvae.theory.estimators import format_table, log_likelihood
from numpyvae.theory.linear_gaussian import LinearGaussian


def linear_case(rng):
    truth = LinearGaussian(rng.normal(size=(6, 3)), rng.normal(size=6), 0.2)
    data = truth.sample(2000, rng)
    vae = nv.VAE(6, 3, hidden=(), likelihood="gaussian", c=0.2, seed=1)
    opt = nv.optim.Adam(lr=0.02)
    for _ in range(600):
        vae.forward(data[rng.choice(2000, 100, replace=False)])
        vae.backward()
        opt.step(vae.flat_params, vae.flat_grads)
    lg = LinearGaussian.from_vae(vae)
    x = truth.sample(100, rng)
    mu_e, lv_e = vae.encode(x)
    mu_l, lv_l = fit_local_posterior(vae, x, steps=1000, lr=0.05, k=20, seed=0)
    return {"model": "linear-Gaussian 6-3 (exact)",
            "log p(x)": lg.log_marginal(x).mean(),
            "ELBO encoder": lg.elbo(x, mu_e, lv_e).mean(),
            "ELBO local fit": lg.elbo(x, mu_l, lv_l).mean(),
            "ELBO best diag q": lg.elbo(x, *lg.optimal_diagonal_q(x)).mean()}


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n-images", type=positive_int, default=100)
    p.add_argument("--steps", type=positive_int, default=300)
    args = p.parse_args()
    out = out_dir(args)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    lin = linear_case(rng)

    x_train, x_val = load_binary_mnist("mnist-embedded", seed=args.seed)
    vae, _ = train_vae(x_train, hidden=(200,), z_dim=10, epochs=2, seed=args.seed,
                       cache=out / "theory_mnist_200_10.npz")
    x = x_val[: args.n_images]
    t1 = time.perf_counter()
    r = amortization_gap(vae, x, steps=args.steps, lr=0.05, k_fit=10, k_eval=1000, seed=args.seed,
                         k_ll=2000)
    t_fit = time.perf_counter() - t1
    ll_enc = log_likelihood(vae, x, k=2000, rng=args.seed)  # same K, encoder as the proposal
    s = r["summary"]
    mn = {"model": f"MNIST 784-200-10 ({len(x)} val images)", "log p(x)": s["log_likelihood"],
          "ELBO encoder": s["elbo_encoder"], "ELBO local fit": s["elbo_local"]}
    rows = [lin, mn]
    for row in rows:
        row["total gap"] = row["log p(x)"] - row["ELBO encoder"]
        row["amortization gap"] = row["ELBO local fit"] - row["ELBO encoder"]
        row["approximation gap"] = row["log p(x)"] - row["ELBO local fit"]
    cols = ["model", "log p(x)", "ELBO encoder", "ELBO local fit", "total gap", "amortization gap",
            "approximation gap", "ELBO best diag q"]
    table = format_table(rows, columns=[c for c in cols if c != "ELBO best diag q"])
    print(table)
    print(f"linear case: best diagonal q ELBO = {lin['ELBO best diag q']:.4f} "
          f"(local fit {lin['ELBO local fit']:.4f})")
    gap, se = r["amortization_gap"], r["gap_stderr"]
    print(f"MNIST per-example amortization gap: median {np.median(gap):.3f}, max {gap.max():.3f}, "
          f"min {gap.min():.3f} nats; examples below -2 s.e.: {(gap < -2 * se).sum()} of {len(gap)}; "
          f"local fits took {t_fit:.1f} s")
    print(f"log p(x) estimate with K = 2000: proposal = local fits {s['log_likelihood']:.3f}, "
          f"proposal = encoder {ll_enc.mean():.3f} (a poorer proposal gives a lower, more biased value)")
    save_text(out / "04_amortization_gap.txt", table)

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.linspace(min(0, r["approximation_gap"].min()), max(gap.max(), r["approximation_gap"].max()), 30)
    ax[0].hist(gap, bins=bins, alpha=0.7, label=f"amortization gap (mean {gap.mean():.2f})")
    ax[0].hist(r["approximation_gap"], bins=bins, alpha=0.6,
               label=f"approximation gap (mean {r['approximation_gap'].mean():.2f})")
    ax[0].set_xlabel("nats")
    ax[0].set_ylabel("validation images")
    ax[0].set_title(f"MNIST VAE: per-image gaps ({len(x)} images)")
    ax[0].legend()
    e = r["elbo_encoder"]
    ax[1].scatter(e, r["log_likelihood"] - e, s=14, marker="x", color="C1",
                  label="log p(x) - encoder ELBO (total gap)")
    ax[1].scatter(e, r["elbo_local"] - e, s=12, color="C0",
                  label="local-fit ELBO - encoder ELBO (amortization gap)")
    ax[1].axhline(0, color="k", lw=0.8)
    ax[1].set_xlabel("encoder ELBO of the image (nats)")
    ax[1].set_ylabel("nats above the encoder ELBO")
    ax[1].set_title("per-image gaps above the encoder ELBO")
    ax[1].legend()
    save_figure(fig, out / "04_amortization_gap.png", t0)


if __name__ == "__main__":
    main()
