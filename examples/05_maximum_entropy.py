"""Maximum entropy at fixed variance (Liao's slides): the Gaussian wins.

Five zero-mean densities with the same variance: Gaussian, Laplace, uniform, logistic and a
two-component Gaussian mixture. Their entropies (closed form; Monte Carlo for the mixture)
are printed next to a Monte Carlo check -mean log p(x_i), and drawn with the entropies in
the legend.

    python examples/05_maximum_entropy.py [--out examples/output] [--var 1.0]
"""

import time

import numpy as np
from _theory_common import out_dir, parser, positive_float, save_figure, save_text

import matplotlib.pyplot as plt
from numpyvae.theory import maxent
from numpyvae.theory.estimators import format_table


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--var", type=positive_float, default=1.0)
    args = p.parse_args()
    out = out_dir(args)
    t0 = time.perf_counter()
    var = args.var
    h, se = maxent.entropies_at_variance(var, n_mc=400_000, seed=args.seed, return_stderr=True)
    rows = []
    for i, name in enumerate(maxent.DISTRIBUTIONS):
        mc, mc_se = maxent.entropy_monte_carlo(name, var, n=400_000, rng=args.seed + 100 + i)
        x = maxent.sample_at_variance(name, 400_000, var, rng=args.seed + 200 + i)
        rows.append({"density": name, "entropy": h[name],
                     "kind": "Monte Carlo" if se[name] > 0 else "closed form",
                     "MC check": mc, "MC s.e.": mc_se,
                     "sample var": float(x.var()),
                     "H_gauss - H": h["gaussian"] - h[name]})
    table = format_table(rows)
    print(f"entropies (nats) of zero-mean densities with variance {var}")
    print(table)
    print(f"Gaussian 0.5 log(2 pi e var) = {maxent.gaussian_entropy(var):.6f}: the largest, as claimed")
    save_text(out / "05_maximum_entropy.txt", table)

    s = np.sqrt(var)
    x = np.linspace(-4.5 * s, 4.5 * s, 2001)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in zip(maxent.DISTRIBUTIONS, ("-", "--", "-.", ":", "-")):
        dens = np.exp(maxent.log_density_at_variance(name, x, var))
        lw = 2.5 if name == "gaussian" else 1.5
        ax[0].plot(x, dens, style, lw=lw, label=f"{name}: H = {h[name]:.4f}")
        ax[1].plot(x, np.log(np.maximum(dens, 1e-300)), style, lw=lw, label=name)
    ax[0].set_title(f"densities with variance {var}: entropy in nats")
    ax[0].set_xlabel("x")
    ax[0].set_ylabel("p(x)")
    ax[0].legend(fontsize=9)
    ax[1].set_ylim(-9, 0.5)
    ax[1].set_title("log p(x): only the Gaussian's is a parabola in x")
    ax[1].set_xlabel("x")
    ax[1].set_ylabel("log p(x)")
    save_figure(fig, out / "05_maximum_entropy.png", t0)


if __name__ == "__main__":
    main()
