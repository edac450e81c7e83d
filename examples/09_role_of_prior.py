"""The role of the prior: aggregate posterior against p(z), holes, and posterior collapse with and without KL warm-up.

Trains three small VAEs (784-200-Z, Z=16 by default) on the packaged MNIST (9000 train /
1000 validation images, fixed binarization): two Bernoulli VAEs identical except for the KL
weight schedule (beta = 1 from the first step, and a linear KL warm-up from 0 to 1 over the
first epochs; derivations/03_elbo.md, "KL warm-up"), and a Gaussian-decoder VAE with a large
fixed variance c, the setting in which Lucas et al. (2019) show collapse is a property of
the likelihood itself. For each it measures, on the validation
images (derivations/09_prior_and_collapse.md):

  * the ELBO and its two parts (reconstruction cost, KL to the prior), nats per image;
  * the KL per latent dimension, and the number of *active* dimensions
    (Burda et al. 2016: Cov_x(E_q[z_j]) > 0.01); the others have collapsed onto the prior;
  * the split (9.2) of the average KL into the mutual information I(x; z) under q and the
    KL from the aggregate posterior q(z) = mean_i q(z | x_i) to the prior, by Monte Carlo;
  * how much of the prior's mass the aggregate posterior misses ("holes"): the fraction of
    prior draws z ~ p(z), projected on the two most active dimensions, whose projected
    aggregate-posterior density is below a tenth of the projected prior density.

The figure shows, per run, the encoder means on the two most active dimensions over the
prior's 1- and 2-sigma circles, the per-dimension KL (collapsed dimensions are the flat bars),
and images decoded from prior samples.

    python examples/09_role_of_prior.py                       # ~1 minute on one core
    python examples/09_role_of_prior.py --epochs 5 --out /tmp/prior

Writes <out>/09_role_of_prior.png and <out>/09_role_of_prior.txt (the table).
Derivations: derivations/09_prior_and_collapse.md, eqs. (9.1)-(9.3).
"""
from __future__ import annotations

import os

# One BLAS thread unless told otherwise: small matmuls, shared machine (see example 08).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
from _theory_common import nonneg_float, nv, out_dir, parser, positive_float, positive_int, save_text  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
from numpyvae.data import load_dataset  # noqa: E402
from numpyvae.training.trainer import kl_warmup_beta  # noqa: E402

LOG_2PI = np.log(2 * np.pi)


def train(x, z_dim, epochs, warmup_epochs, seed, likelihood="bernoulli", c=1.0, batch=100, lr=1e-3):
    """Adam on the beta_t-weighted loss (2.7); returns the trained VAE."""
    vae = nv.VAE(x.shape[1], z_dim, hidden=(200,), likelihood=likelihood, c=c, seed=seed, dtype=np.float32)
    opt = nv.optim.Adam(lr=lr)
    rng = np.random.default_rng(seed)
    steps_per_epoch = len(x) // batch
    step = 0
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for i in range(steps_per_epoch):
            beta = kl_warmup_beta(step, steps_per_epoch, warmup_epochs, 1.0)
            vae.forward(x[perm[i * batch:(i + 1) * batch]], beta=beta)
            vae.backward()
            opt.step(vae.flat_params, vae.flat_grads)
            step += 1
    return vae


def log_mixture_density(z, mu, logvar, chunk=256):
    """log q(z) for the aggregate posterior q(z) = mean_i N(z; mu_i, diag e^{logvar_i}) (9.1).

    z: (M, Z); mu, logvar: (N, Z) -> (M,). Stable log-mean-exp over the N components.
    """
    out = np.empty(len(z))
    var = np.exp(logvar)
    for s in range(0, len(z), chunk):
        zz = z[s:s + chunk, None, :]                                              # (m, 1, Z)
        lp = -0.5 * (LOG_2PI + logvar + (zz - mu) ** 2 / var).sum(-1)             # (m, N)
        m = lp.max(1, keepdims=True)
        out[s:s + chunk] = m[:, 0] + np.log(np.exp(lp - m).mean(1))
    return out


def measure(vae, x, rng, n_mc=2000):
    """The numbers of the table for one trained model on validation images x."""
    x64 = x.astype(np.float64)
    vae64 = vae.copy(dtype=np.float64)
    t = vae64.forward(x64, eps=rng.normal(size=(1, len(x), vae.z_dim)))
    mu, logvar = t.mu, t.logvar
    kl_dim = 0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1).mean(0)               # (Z,), nats
    activity = mu.var(0)                                                         # Cov_x(E_q[z_j])
    active = activity > 0.01
    collapsed = kl_dim < 0.05
    # (9.2): mean_i KL(q(z|x_i) || p) = I_q(x; z) + KL(q(z) || p(z)); the last by Monte Carlo
    comp = rng.integers(len(x), size=n_mc)
    zq = mu[comp] + np.exp(0.5 * logvar[comp]) * rng.normal(size=(n_mc, vae.z_dim))
    log_p = -0.5 * (LOG_2PI + zq ** 2).sum(1)
    kl_agg = float(np.mean(log_mixture_density(zq, mu, logvar) - log_p))
    kl_avg = float(kl_dim.sum())
    # holes, in the plane of the two most active dimensions
    top2 = np.argsort(activity)[::-1][:2]
    zp = rng.normal(size=(n_mc, 2))
    log_q2 = log_mixture_density(zp, mu[:, top2], logvar[:, top2])
    log_p2 = -0.5 * (LOG_2PI + zp ** 2).sum(1)
    holes = float(np.mean(log_q2 < log_p2 + np.log(0.1)))
    return {
        "elbo": float(t.elbo), "recon": float(np.mean(t.recon)), "kl": kl_avg,
        "active": int(active.sum()), "collapsed": int(collapsed.sum()), "mi": kl_avg - kl_agg, "kl_agg": kl_agg,
        "holes": holes,
        "kl_dim": kl_dim, "mu": mu, "logvar": logvar, "top2": top2,
    }


def draw(runs, y_val, vaes, path, t0, rng):
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 4.2 * len(runs)),
                             gridspec_kw={"width_ratios": [1.1, 1.2, 1.0]})
    axes = np.atleast_2d(axes)
    for row, ((name, r), vae) in enumerate(zip(runs.items(), vaes)):
        a, b = r["top2"]
        ax = axes[row, 0]
        sc = ax.scatter(r["mu"][:, a], r["mu"][:, b], c=y_val, cmap="tab10", s=6, alpha=0.8)
        th = np.linspace(0, 2 * np.pi, 200)
        for k in (1, 2):
            ax.plot(k * np.cos(th), k * np.sin(th), "k--", lw=1)
        ax.set_aspect("equal")
        ax.set_xlim(-4, 4)
        ax.set_ylim(-4, 4)
        ax.set_title(f"{name}\nencoder means on dims {a}, {b}; prior 1, 2 sigma dashed\n"
                     f"{100 * r['holes']:.1f}% of prior draws in holes", fontsize=9)
        ax.set_xlabel(f"z[{a}]")
        ax.set_ylabel(f"z[{b}]")
        ax = axes[row, 1]
        order = np.arange(len(r["kl_dim"]))
        ax.bar(order, r["kl_dim"], color=["tab:red" if v < 0.05 else "tab:blue" for v in r["kl_dim"]])
        ax.axhline(0.05, color="tab:red", lw=0.8, ls=":")
        ax.set_xlabel("latent dimension j")
        ax.set_ylabel("mean KL(q(z_j|x) || N(0,1)), nats")
        ax.set_title(f"{name}\nKL per dimension ({r['collapsed']} of {len(order)} below 0.05 nats, red)",
                     fontsize=10)
        ax = axes[row, 2]
        imgs = np.clip(vae.sample(36, rng=rng), 0, 1)
        imgs = imgs.reshape(6, 6, 28, 28).transpose(0, 2, 1, 3).reshape(6 * 28, 6 * 28)
        ax.imshow(imgs, cmap="gray_r")
        ax.axis("off")
        ax.set_title(f"{name}\ndecoded prior samples (decoder means)", fontsize=9)
    fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.3, location="right", label="digit")
    fig.set_layout_engine("constrained")
    fig.savefig(path, dpi=110)
    print(f"[saved {path}]  ({time.perf_counter() - t0:.1f} s in all)")


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=positive_int, default=12, help="training epochs per run (default 12)")
    p.add_argument("--warmup-epochs", type=nonneg_float, default=8.0,
                   help="epochs over which beta grows from 0 to 1 in the warm-up run (default 8)")
    p.add_argument("--z-dim", type=positive_int, default=16, help="latent dimensions (default 16)")
    p.add_argument("--c", type=positive_float, default=2.0,
                   help="decoder variance of the Gaussian-decoder run (default 2.0; Lucas et al.)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.z_dim < 2 or args.warmup_epochs <= 0 or not args.c > 0:
        p.error("--epochs must be >= 1, --z-dim >= 2, --warmup-epochs > 0 and --c > 0")
    t0 = time.perf_counter()
    out = out_dir(args)
    data = load_dataset("mnist-embedded", binarize="fixed", seed=args.seed)
    x_tr, x_va = data.x_train.astype(np.float32), data.x_val.astype(np.float32)
    runs, vaes = {}, []
    configs = [("Bernoulli, beta = 1", 0.0, "bernoulli"),
               (f"Bernoulli, warm-up {args.warmup_epochs:g} ep", args.warmup_epochs, "bernoulli"),
               (f"Gaussian c={args.c:g}, beta = 1", 0.0, "gaussian")]
    for name, warm, lik in configs:
        t1 = time.perf_counter()
        vae = train(x_tr, args.z_dim, args.epochs, warm, args.seed, likelihood=lik, c=args.c)
        runs[name] = measure(vae, x_va, np.random.default_rng(args.seed + 1))
        vaes.append(vae)
        print(f"  {name}: trained in {time.perf_counter() - t1:.1f} s")
    head = (f"{'run':<28}{'ELBO':>9}{'recon':>9}{'KL':>8}{'active':>8}{'KL<.05':>8}"
            f"{'I(x;z)':>9}{'KL(q(z)||p)':>13}{'holes':>8}")
    lines = [f"VAEs 784-200-{args.z_dim} on packaged MNIST (9000 train / 1000 val, fixed "
             f"binarization), {args.epochs} epochs of Adam (lr 1e-3, batch 100), seed {args.seed}.",
             "Validation numbers in nats per image; K=1 ELBO estimate; active = Cov_x(E_q z_j) > 0.01;",
             "KL<.05 = dimensions whose mean KL to N(0,1) is below 0.05 nats (collapsing onto the prior);",
             "I(x;z) = mean KL - KL(q(z)||p) with KL(q(z)||p) by Monte Carlo (2000 draws, 1000-component "
             "mixture, so I is at most about log 1000 = 6.91 up to Monte Carlo noise); "
             "holes = share of prior draws (top-2 active dims) where q(z) < p(z)/10.", "", head, "-" * len(head)]
    for name, r in runs.items():
        lines.append(f"{name:<28}{r['elbo']:>9.2f}{r['recon']:>9.2f}{r['kl']:>8.2f}{r['active']:>8d}{r['collapsed']:>8d}"
                     f"{r['mi']:>9.2f}{r['kl_agg']:>13.2f}{100 * r['holes']:>7.1f}%")
    table = "\n".join(lines)
    print(table)
    save_text(out / "09_role_of_prior.txt", table)
    draw(runs, data.y_val, vaes, out / "09_role_of_prior.png", t0, np.random.default_rng(args.seed + 2))


if __name__ == "__main__":
    main()
