"""The best prior for a trained encoder: a mixture and a VampPrior fitted to the aggregate posterior.

Trains one VAE (784-200-Z, N(0, I) prior, Z = 2 by default so the latent plane can be drawn) on
the packaged MNIST with the package's Trainer. Then, with the encoder and decoder frozen, it fits
two learned priors to the aggregate posterior q(z) = mean_i q(z | x_i) (note 9, eq. (9.1)) by
maximising E_q(z)[log p(z)] with Adam, which by note 15, eq. (15.2) is the same as maximising the
average ELBO over the prior alone:

  * a mixture of C Gaussians (means, log-variances and weights learned, eq. (15.3)-(15.4));
  * a VampPrior with C pseudo-inputs, started at training images and moved by the gradient
    carried back through the frozen encoder (eq. (15.7)-(15.8)), kept in [0, 1].

For each prior it reports the validation ELBO with the Monte Carlo KL (15.5) and the split of the
average KL (9.2): the information term is the same for every prior; only KL(q(z) || p) changes,
so the ELBO gain is exactly the mismatch each prior removes. The figure draws the aggregate
posterior with each prior's density and components over it, and the VampPrior's pseudo-inputs.

    python examples/15_learned_prior.py                  # about a minute on one core
    python examples/15_learned_prior.py --z-dim 8 --components 50

Writes <out>/15_learned_prior.png and <out>/15_learned_prior.txt.
Derivations: derivations/15_learned_priors.md, eqs. (15.2)-(15.8).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
from _theory_common import nv, out_dir, parser, save_text  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
from numpyvae import priors  # noqa: E402
from numpyvae.data import load_dataset  # noqa: E402
from numpyvae.kl import log_normal_diag  # noqa: E402
from numpyvae.training.trainer import TrainConfig, Trainer  # noqa: E402


def encoder_backward(vae, dmu, dlogvar):
    """dL/dx of the encoder's last forward: the two heads, then the trunk (note 7, step 5)."""
    dh = vae.enc_mu.backward(dmu) + vae.enc_logvar.backward(dlogvar)
    return vae.enc.backward(dh) if vae.enc.linears else dh


def aggregate_draws(mu, logvar, n, rng):
    """n codes from the aggregate posterior (9.1): a random image, then z ~ q(z | x_i)."""
    i = rng.integers(len(mu), size=n)
    return mu[i] + np.exp(0.5 * logvar[i]) * rng.standard_normal((n, mu.shape[1]))


def fit_mixture(mu, logvar, C, steps, rng, lr=0.02):
    prior = priors.MixturePrior(C, mu.shape[1], seed=int(rng.integers(1 << 31)))
    prior.means[...] = mu[rng.choice(len(mu), C, replace=False)]      # start on the data's codes
    opts = {n: nv.optim.Adam(lr=lr) for n in prior.param_names()}
    for _ in range(steps):
        z = aggregate_draws(mu, logvar, 500, rng)
        prior.log_prob(z)
        prior.backward(np.full(len(z), -1.0 / len(z)))             # minimise -mean log p(z)
        for n, opt in opts.items():
            opt.step(getattr(prior, n), getattr(prior, "d" + n))
    return prior


def fit_vamp(vae, x_train, mu, logvar, C, steps, rng, lr=0.01):
    prior = priors.VampPrior(C, vae.x_dim, init=x_train[rng.choice(len(x_train), C, replace=False)])
    opt = nv.optim.Adam(lr=lr)
    first = vae.enc.linears[0] if vae.enc.linears else vae.enc_mu
    first.input_grad = True                                         # we need dL/du here
    for _ in range(steps):
        z = aggregate_draws(mu, logvar, 500, rng)
        mu_u, lv_u = vae.encode(prior.pseudo)
        prior.log_prob(z, mu_u, lv_u)
        _, dmu_u, dlv_u = prior.backward(np.full(len(z), -1.0 / len(z)))
        prior.set_input_grad(encoder_backward(vae, dmu_u, dlv_u))
        opt.step(prior.pseudo, prior.dpseudo)
        np.clip(prior.pseudo, 0.0, 1.0, out=prior.pseudo)           # stay a valid Bernoulli input
    first.input_grad = False
    return prior


def elbo_with(vae, x, log_prior, rng, k=20):
    """Validation ELBO with the Monte Carlo KL (15.5) under a given log p(z), and the mean KL."""
    mu, logvar = vae.encode(x)
    eps = rng.standard_normal((k,) + mu.shape)
    z = mu + np.exp(0.5 * logvar) * eps
    recon = -vae.log_px_given_z(x, z).mean(0)
    kl = (log_normal_diag(z, mu, logvar) - log_prior(z)).mean(0)
    return float(np.mean(-(recon + kl))), float(np.mean(kl))


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15, help="VAE training epochs (default 15)")
    p.add_argument("--z-dim", type=int, default=2, help="latent dimensions (default 2: drawn as a plane)")
    p.add_argument("--components", type=int, default=10, help="mixture components / pseudo-inputs (default 10)")
    p.add_argument("--steps", type=int, default=1500, help="Adam steps fitting each prior (default 1500)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.z_dim < 1 or args.components < 1 or args.steps < 1:
        p.error("--epochs, --z-dim, --components and --steps must be positive")
    t0 = time.perf_counter()
    out = out_dir(args)
    rng = np.random.default_rng(args.seed)
    data = load_dataset("mnist-embedded", binarize="fixed", seed=args.seed)
    x_tr, x_va = data.x_train.astype(np.float64), data.x_val.astype(np.float64)
    vae = nv.VAE(784, args.z_dim, hidden=(200,), seed=args.seed)
    Trainer(vae, x_tr, x_va, TrainConfig(epochs=args.epochs, seed=args.seed, progress=False)).fit()
    mu, logvar = vae.encode(x_tr)

    mog = fit_mixture(mu, logvar, args.components, args.steps, rng)
    vamp = fit_vamp(vae, x_tr, mu, logvar, args.components, args.steps, rng)
    mu_u, lv_u = vae.encode(vamp.pseudo)
    logs = {"N(0, I)": nv.kl.log_std_normal,
            f"mixture, C = {args.components}": mog.log_prob,
            f"VampPrior, C = {args.components}": lambda z: vamp.log_prob(z, mu_u, lv_u)}
    # (9.2): KL(q(z) || p) by Monte Carlo on draws from the aggregate posterior of the validation set
    mu_v, lv_v = vae.encode(x_va)
    zq = aggregate_draws(mu_v, lv_v, 4000, rng)
    log_qz = priors.log_mixture(zq, mu_v, lv_v, np.full(len(mu_v), -np.log(len(mu_v))))[0]
    lines = [f"VAE 784-200-{args.z_dim} (N(0, I) prior while training), {args.epochs} epochs on the packaged MNIST "
             f"(9000 train / 1000 validation, fixed binarization), seed {args.seed}; priors fitted to the "
             f"training aggregate posterior with the encoder and decoder frozen ({args.steps} Adam steps).",
             "Validation numbers in nats per image: ELBO with the Monte Carlo KL (20 samples), mean KL, and "
             "KL(q(z) || p) by Monte Carlo (4000 draws; q(z) a 1000-component mixture).", "",
             f"{'prior':<24}{'ELBO':>10}{'KL':>9}{'KL(q(z)||p)':>13}"]
    rows = {}
    for name, lp in logs.items():
        elbo, kl = elbo_with(vae, x_va, lp, np.random.default_rng(args.seed + 7))
        mism = float(np.mean(log_qz - lp(zq)))
        rows[name] = (elbo, kl, mism)
        lines.append(f"{name:<24}{elbo:>10.2f}{kl:>9.2f}{mism:>13.2f}")
    table = "\n".join(lines)
    print(table)
    save_text(out / "15_learned_prior.txt", table)

    if args.z_dim == 2:
        draw(out / "15_learned_prior.png", mu_v, lv_v, data.y_val, logs, mog, (mu_u, lv_u), vamp, rows, t0)


def _ellipse(ax, m, lv, **kw):
    th = np.linspace(0, 2 * np.pi, 80)
    s = np.exp(0.5 * lv)
    ax.plot(m[0] + 2 * s[0] * np.cos(th), m[1] + 2 * s[1] * np.sin(th), **kw)


def draw(path, mu, logvar, y, logs, mog, vamp_comp, vamp, rows, t0):
    lim = np.abs(mu).max() * 1.15 + 0.5
    g = np.linspace(-lim, lim, 160)
    Z = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    log_agg = priors.log_mixture(Z, mu, logvar, np.full(len(mu), -np.log(len(mu))))[0].reshape(160, 160)
    fig, axes = plt.subplots(1, 4, figsize=(19, 5))
    for ax, (name, lp) in zip(axes[:3], logs.items()):
        ax.imshow(log_agg, origin="lower", extent=(-lim, lim, -lim, lim), cmap="Greys",
                  vmin=log_agg.max() - 9, vmax=log_agg.max())          # log density: the tails show
        ax.contour(g, g, np.exp(lp(Z)).reshape(160, 160), levels=6, colors="tab:blue", linewidths=0.8)
        if name.startswith("mixture"):
            w = np.exp(mog.log_weights())
            for c in range(mog.n_components):
                _ellipse(ax, mog.means[c], mog.logvars[c], color="tab:red", lw=0.6 + 6 * w[c])
        elif name.startswith("Vamp"):
            for m, lv in zip(*vamp_comp):
                _ellipse(ax, m, lv, color="tab:red", lw=1.0)
        else:
            _ellipse(ax, np.zeros(2), np.zeros(2), color="tab:red", lw=1.0)
        elbo, kl, mism = rows[name]
        ax.set_title(f"prior: {name}\nvalidation ELBO {elbo:.2f}, KL(q(z)||p) {mism:.2f} nats", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
    axes[0].text(0.02, 0.02, "grey: log density of the aggregate posterior q(z)\nblue: prior density contours\n"
                 "red: 2-sigma ellipse of each component\n(mixture: line width = weight)",
                 transform=axes[0].transAxes, fontsize=8, va="bottom")
    C = len(vamp.pseudo)
    n = int(np.ceil(np.sqrt(C)))
    tiles = np.full((n * 29, n * 29), 0.15)                          # light grey between tiles
    for c in range(C):
        r, k = divmod(c, n)
        tiles[r * 29:r * 29 + 28, k * 29:k * 29 + 28] = vamp.pseudo[c].reshape(28, 28)
    axes[3].imshow(tiles, cmap="gray_r", vmin=0, vmax=1)
    axes[3].axis("off")
    axes[3].set_title("the VampPrior's pseudo-inputs u_c after fitting\n(started at training images)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"[saved {path}]  ({time.perf_counter() - t0:.1f} s in all)")


if __name__ == "__main__":
    main()
