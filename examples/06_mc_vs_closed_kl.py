"""Monte Carlo versus closed-form KL, and the variance of the ELBO gradient with K samples.

Left: the error of the n-sample Monte Carlo KL(q || N(0, I)) = mean_i [log q(z_i) - log p(z_i)]
against the closed form 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1), for three q's: unbiased,
with an RMSE that falls like 1/sqrt(n). Right: the variance of the minibatch ELBO gradient of a
trained MNIST VAE (784-200-10) over fresh eps draws, for K = 1, 5, 50 samples per example
(Liao's K-sample estimate), with the closed-form KL and with the Monte Carlo KL.

    python examples/06_mc_vs_closed_kl.py [--out examples/output]
"""

import time

import numpy as np
from _theory_common import load_binary_mnist, out_dir, parser, positive_int, save_figure, save_text, train_vae

import matplotlib.pyplot as plt
from numpyvae.theory.estimators import elbo_gradient_variance, format_table, kl_mc_error

NS = (1, 3, 10, 30, 100, 300, 1000, 3000)
QS = {
    "near the prior": (np.array([0.1, -0.2, 0.05]), np.array([-0.1, 0.2, 0.0])),
    "typical posterior": (np.array([1.0, -0.5, 0.3]), np.array([-2.0, -1.5, -2.5])),
    "sharp posterior": (np.array([2.0, 1.0, -1.5]), np.array([-5.0, -4.0, -6.0])),
}


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n-rep", type=positive_int, default=40)
    args = p.parse_args()
    out = out_dir(args)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    kl_rows, curves = [], {}
    for name, (mu, lv) in QS.items():
        rows = kl_mc_error(mu, lv, ns=NS, n_rep=200, rng=rng)
        curves[name] = rows
        for r in rows:
            kl_rows.append({"q": name, **r, "rmse*sqrt(n)": r["rmse"] * np.sqrt(r["n"])})
    t_kl = format_table(kl_rows)
    print("Monte Carlo KL versus closed form (200 repetitions per n)")
    print(t_kl)

    x_train, x_val = load_binary_mnist("mnist-embedded", seed=args.seed)
    vae, _ = train_vae(x_train, hidden=(200,), z_dim=10, epochs=2, seed=args.seed,
                       cache=out / "theory_mnist_200_10.npz")
    xb = x_val[:100]
    g_rows = []
    for kl in ("closed", "mc"):
        for r in elbo_gradient_variance(vae, xb, ks=(1, 5, 50), n_rep=args.n_rep, rng=rng, kl=kl):
            g_rows.append({"kl": kl, **r})
    base = {kl: next(r["total_var"] for r in g_rows if r["kl"] == kl and r["k"] == 1) for kl in ("closed", "mc")}
    for r in g_rows:
        r["var(K=1)/var"] = base[r["kl"]] / r["total_var"]
    t_g = format_table(g_rows, floatfmt="{:.4g}")
    print(f"\nELBO gradient variance over {args.n_rep} eps draws, batch of 100 validation images, "
          "summed over all parameters")
    print(t_g)
    save_text(out / "06_mc_vs_closed_kl.txt", t_kl + "\n\n" + t_g)

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for (name, rows), mk in zip(curves.items(), ("o", "s", "^")):
        n = np.array([r["n"] for r in rows])
        rmse = np.array([r["rmse"] for r in rows])
        ax[0].loglog(n, rmse, mk + "-", label=f"{name} (KL = {rows[0]['kl_closed']:.2f})")
        ax[0].loglog(n, rmse[0] / np.sqrt(n), "k:", lw=0.8)
    ax[0].set_xlabel("n (Monte Carlo samples)")
    ax[0].set_ylabel("RMSE of the MC KL (nats)")
    ax[0].set_title("MC KL: unbiased, error ~ 1/sqrt(n) (dotted)")
    ax[0].legend(fontsize=9)
    for kl, mk in (("closed", "o"), ("mc", "s")):
        rows = [r for r in g_rows if r["kl"] == kl]
        k = np.array([r["k"] for r in rows])
        v = np.array([r["total_var"] for r in rows])
        ax[1].loglog(k, v, mk + "-", label=f"KL {kl}-form" if kl == "closed" else "KL Monte Carlo")
        ax[1].loglog(k, v[0] / k, "k:", lw=0.8)
    ax[1].set_xlabel("K (samples per example)")
    ax[1].set_ylabel("total gradient variance")
    ax[1].set_title("MNIST VAE: ELBO gradient variance ~ 1/K (dotted)")
    ax[1].legend()
    save_figure(fig, out / "06_mc_vs_closed_kl.png", t0)


if __name__ == "__main__":
    main()
