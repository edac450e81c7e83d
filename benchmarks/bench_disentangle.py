"""Disentanglement against beta: MIG, the FactorVAE score and DCI of beta-VAEs on the sprites.

Protocol: ``numpyvae.data.shapes`` (32x32 binary sprites, 5 known factors), 20,000 training
images drawn from the data seed, an MLP VAE 1024-400-Z (ReLU, Bernoulli decoder, Z = 10 latent
dimensions), Adam lr 1e-3, batch 100, ``--epochs`` epochs through the package's ``Trainer``, for
each beta and seed. The codes are the encoder means. Scores (note 16):

* MIG (16.3) and DCI (16.5) on 10,000 fresh sprites with their factors (20 bins for MIG);
* the FactorVAE score (16.4), 800 training and 800 evaluation votes of 64 sprites each, drawn
  and encoded on the fly.

Prints one row per (beta, seed), then mean and range per beta, and what Locatello et al. (2019)
report for beta-VAEs on dSprites (convolutional models, 64x64 images, 300k steps: not the same
setting; they give their scores as violin plots, which are not restated as numbers). Writes the
traversal figure and GIF of the best run by MIG to ``--out``.

    python benchmarks/bench_disentangle.py                       # 3 betas x 3 seeds
    python benchmarks/bench_disentangle.py --betas 1 --seeds 0 --epochs 1   # quick
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from numpyvae import VAE  # noqa: E402
from numpyvae.data import shapes  # noqa: E402
from numpyvae.theory import disentangle  # noqa: E402
from numpyvae.training.trainer import TrainConfig, Trainer  # noqa: E402

#: Locatello et al. (2019) show each score of their beta-VAEs on dSprites as a violin plot over
#: seeds and betas, not as a table; what they state in words is printed beside our table.
LOCATELLO = ("Locatello et al. (2019), beta-VAE on dSprites (conv nets, 64x64, 300k steps, 50 seeds): "
             "scores given as violin plots, not numbers; the seed and beta move every score more "
             "than the choice of objective, and no unsupervised score picks the well-disentangled runs.")


def encoder_means(vae, x, batch=1000):
    return np.concatenate([vae.encode(x[i:i + batch])[0] for i in range(0, len(x), batch)]).astype(np.float64)


def run(beta, seed, epochs, z_dim, x_train, x_eval, f_eval):
    vae = VAE(x_train.shape[1], z_dim, hidden=(400,), seed=seed, dtype=np.float32)
    cfg = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, beta=beta, seed=seed, progress=False)
    t0 = time.perf_counter()
    tr = Trainer(vae, x_train, x_eval[:2000], cfg)
    tr.fit()
    train_s = time.perf_counter() - t0
    mu = encoder_means(vae, x_eval)
    mig, gaps, _ = disentangle.mig(mu, f_eval)
    d, c, _ = disentangle.dci(mu, f_eval)
    rng = np.random.default_rng(1000 + seed)
    fv, _ = disentangle.factor_vae_score(lambda f: encoder_means(vae, shapes.render(f)),
                                         shapes.sample_factors, rng)
    kl_dim = 0.5 * np.mean(mu ** 2, 0)  # the mean part of the KL per dimension (for the row labels)
    val = tr.evaluate_val()
    return vae, {"beta": beta, "seed": seed, "MIG": mig, "FactorVAE": fv, "DCI D": d, "DCI C": c,
                 "active": int(np.sum(mu.var(0) > 0.01)), "val_elbo": -float(val["neg_elbo"]),
                 "val_kl": float(val["kl"]),
                 "gaps": [float(g) for g in gaps], "train_s": train_s, "kl_dim": kl_dim.tolist()}


def plot_scores(rows, path):
    """The metric table as a figure: each score against beta, one dot per seed, the mean joined."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("MIG", "FactorVAE", "DCI D", "DCI C", "active", "val_elbo")
    names = ("MIG (16.3)", "FactorVAE score (16.4)", "DCI disentanglement (16.5)", "DCI completeness (16.5)",
             "active dimensions (9.3) of 10", "validation ELBO (nats)")
    betas = sorted({r["beta"] for r in rows})
    fig, axes = plt.subplots(1, len(keys), figsize=(3.1 * len(keys), 3.2))
    for ax, key, name in zip(axes, keys, names):
        for i, b in enumerate(betas):
            v = [r[key] for r in rows if r["beta"] == b]
            ax.plot([i] * len(v), v, "o", color="tab:blue", alpha=0.6, ms=5)
        ax.plot(range(len(betas)), [np.mean([r[key] for r in rows if r["beta"] == b]) for b in betas], "k-", lw=1)
        ax.set_xticks(range(len(betas)))
        ax.set_xticklabels([f"{b:g}" for b in betas])
        ax.set_xlabel("beta")
        ax.set_title(name, fontsize=9)
        if key in ("MIG", "FactorVAE", "DCI D", "DCI C"):
            ax.set_ylim(0, 1)
        if key == "active":
            ax.set_ylim(0, 10.5)
        if key == "FactorVAE":
            ax.axhline(0.2, color="tab:red", ls=":", lw=1)
            ax.text(0.02, 0.21, "chance (1/5)", color="tab:red", fontsize=7, transform=ax.get_yaxis_transform())
    fig.suptitle("beta-VAEs on the sprites: each dot one seed, the line the mean", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plot-only", metavar="RESULTS_JSON", help="draw the score figure of an earlier run and stop")
    p.add_argument("--betas", default="1,4,16")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--z-dim", type=int, default=10)
    p.add_argument("--out", default="bench_disentangle_out")
    a = p.parse_args(argv)
    if a.plot_only:
        os.makedirs(a.out, exist_ok=True)
        with open(a.plot_only) as fh:
            rows = json.load(fh)
        print(f"[wrote {plot_scores(rows, os.path.join(a.out, 'scores_vs_beta.png'))}]")
        return
    betas = [float(b) for b in a.betas.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    os.makedirs(a.out, exist_ok=True)
    data = shapes.load_shapes(0, n_train=20000, n_val=10000, n_test=1)
    x_train, x_eval, f_eval = data["x_train"], data["x_val"], data["f_val"]
    rows, best = [], None
    print(f"sprites 32x32, 20000 train, MLP 1024-400-{a.z_dim}, {a.epochs} epochs, Adam 1e-3, batch 100")
    head = (f"{'beta':>5}{'seed':>5}{'MIG':>7}{'FactVAE':>9}{'DCI D':>7}{'DCI C':>7}{'active':>7}"
            f"{'val ELBO':>10}{'s':>7}")
    print(head)
    for beta in betas:
        for seed in seeds:
            vae, r = run(beta, seed, a.epochs, a.z_dim, x_train, x_eval, f_eval)
            rows.append(r)
            print(f"{beta:>5g}{seed:>5d}{r['MIG']:>7.3f}{r['FactorVAE']:>9.3f}{r['DCI D']:>7.3f}{r['DCI C']:>7.3f}"
                  f"{r['active']:>7d}{r['val_elbo']:>10.2f}{r['train_s']:>7.0f}", flush=True)
            if best is None or r["MIG"] > best[1]["MIG"]:
                best = (vae, r)
    print("\nper beta: mean [min, max] over seeds")
    for beta in betas:
        rs = [r for r in rows if r["beta"] == beta]
        cells = []
        for key in ("MIG", "FactorVAE", "DCI D"):
            v = np.array([r[key] for r in rs])
            cells.append(f"{key} {v.mean():.3f} [{v.min():.3f}, {v.max():.3f}]")
        print(f"beta {beta:g}: " + "; ".join(cells))
    print(LOCATELLO)
    vae, r = best
    mu = encoder_means(vae, x_eval)
    order = np.argsort(mu.var(0))[::-1]
    values = np.linspace(-2.5, 2.5, 11)
    ref = mu[0]
    imgs = disentangle.traverse(lambda z: vae.decode_mean(z.astype(vae.dtype)), ref, values)[order]
    labels = [f"z[{j}] var {mu[:, j].var():.2f}" for j in order]
    title = f"best run by MIG: beta {r['beta']:g}, seed {r['seed']} (MIG {r['MIG']:.2f})"
    disentangle.save_traversal_png(imgs, (32, 32), os.path.join(a.out, "traversal_best.png"), labels, values, title)
    disentangle.save_traversal_gif(imgs, (32, 32), os.path.join(a.out, "traversal_best.gif"))
    with open(os.path.join(a.out, "results.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    plot_scores(rows, os.path.join(a.out, "scores_vs_beta.png"))
    print(f"[wrote {a.out}/traversal_best.png, traversal_best.gif, scores_vs_beta.png, results.json]")


if __name__ == "__main__":
    main()
