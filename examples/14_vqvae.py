"""VQ-VAE on MNIST (van den Oord, Vinyals & Kavukcuoglu 2017) with MLPs and a hand-written backward.

The encoder gives M code vectors of dimension d per image, each replaced by its nearest entry
of a K-entry codebook; the decoder reads the quantized vectors. Two runs with the same settings
differ only in the codebook's start: random normal entries, or K encoder outputs of training
images (VQVAE.init_codebook). After each epoch: training loss parts, the codes' perplexity and
the number of dead codes (never chosen during the epoch). Then test reconstruction cost,
-ELBO under a uniform prior (recon + M log K), and samples from a per-position categorical
prior fitted to the training codes (VQVAE.fit_prior) beside samples from the uniform prior.

    python examples/14_vqvae.py [--out DIR] [--epochs 10] [--M 8] [--d 4] [--K 32]
"""
import time

import numpy as np
from _family_common import load_labelled, nonneg_float, out_dir, parser, positive_int, save_figure, save_text, table

import matplotlib.pyplot as plt
import numpyvae as nv
from numpyvae.vqvae import perplexity


def train(vq, x, epochs, seed, label):
    opt = nv.optim.Adam(lr=1e-3)
    rng = np.random.default_rng(seed)
    hist = []
    t0 = time.perf_counter()
    for ep in range(epochs):
        perm = rng.permutation(len(x))
        parts, used = np.zeros(3), []
        n = 0
        for i in range(0, len(x) - 99, 100):
            t = vq.forward(x[perm[i:i + 100]])
            vq.backward()
            opt.step(vq.flat_params, vq.flat_grads)
            parts += (t.recon, t.codebook, t.commitment)
            used.append(t.indices)
            n += 1
        used = np.concatenate(used)
        dead = vq.codebook_size - len(np.unique(used))
        hist.append((ep + 1, *(parts / n), perplexity(used, vq.codebook_size), dead))
        print(f"  {label} epoch {ep + 1}/{epochs}: recon {parts[0] / n:.2f}, codebook "
              f"{parts[1] / n:.3f}, perplexity {hist[-1][4]:.1f}, dead codes {dead} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return np.array(hist), time.perf_counter() - t0


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--M", type=positive_int, default=8)
    p.add_argument("--d", type=positive_int, default=4)
    p.add_argument("--K", type=positive_int, default=32)
    p.add_argument("--hidden", type=positive_int, default=256)
    p.add_argument("--beta", type=nonneg_float, default=0.25)
    p.add_argument("--data", choices=("auto", "mnist", "mnist-embedded"), default="auto")
    args = p.parse_args()
    out = out_dir(args)
    t0 = time.perf_counter()
    d, source = load_labelled(args.data, seed=args.seed)
    x_train = d.x_train.astype(np.float32)
    x_test = (d.x_test if d.x_test is not None else d.x_val).astype(np.float32)
    print(f"data: {source} (fixed binarization), train {x_train.shape}, test {x_test.shape}; "
          f"784-{args.hidden}-(M={args.M} x d={args.d}), K={args.K}, beta={args.beta}, "
          f"{args.epochs} epochs, Adam 1e-3, batch 100, float32, seed {args.seed}")
    rows, hists, models = [], {}, {}
    for init in ("random", "data"):
        vq = nv.VQVAE(784, n_codes=args.M, code_dim=args.d, codebook_size=args.K,
                      hidden=(args.hidden,), beta=args.beta, seed=args.seed, dtype=np.float32)
        if init == "data":
            vq.init_codebook(x_train[:2000], rng=np.random.default_rng(args.seed))
        hist, secs = train(vq, x_train, args.epochs, args.seed, f"init={init}")
        t = vq.forward(x_test)
        rows.append({"codebook init": init, "test recon": f"{t.recon:.2f}",
                     "M log K": f"{t.kl:.2f}", "test -ELBO (uniform prior)": f"{-t.elbo:.2f}",
                     "test perplexity": f"{perplexity(t.indices, args.K):.1f}",
                     "dead codes (last epoch)": int(hist[-1, 5]), "train s": f"{secs:.0f}"})
        hists[init], models[init] = hist, vq
    txt = table(rows, list(rows[0]))
    print(txt)
    save_text(out / "14_vqvae.txt", txt)
    vq = models["data"]
    h, w = d.image_shape
    fig, ax = plt.subplots(4, 10, figsize=(8, 3.6))
    rec = vq.reconstruct(x_test[:20])
    for j in range(20):
        r, c = 2 * (j // 10), j % 10
        ax[r, c].imshow(x_test[j].reshape(h, w), cmap="gray")
        ax[r + 1, c].imshow(rec[j].reshape(h, w), cmap="gray")
    for a in ax.ravel():
        a.set_xticks([]), a.set_yticks([])
    ax[0, 0].set_ylabel("input", fontsize=7)
    ax[1, 0].set_ylabel("recon", fontsize=7)
    fig.suptitle(f"VQ-VAE reconstructions ({args.M} codes of {args.K})", fontsize=9)
    save_figure(fig, out / "14_vqvae_recon.png", t0)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    for init, hist in hists.items():
        ax[0].plot(hist[:, 0], hist[:, 4], "o-", label=f"init={init}")
        ax[1].plot(hist[:, 0], hist[:, 5], "o-", label=f"init={init}")
    ax[0].axhline(args.K, color="grey", ls=":", label="K (all codes equally used)")
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("perplexity of code usage")
    ax[1].set_xlabel("epoch"), ax[1].set_ylabel("dead codes")
    ax[0].legend(fontsize=8), ax[1].legend(fontsize=8)
    save_figure(fig, out / "14_vqvae_usage.png", t0)
    prior = vq.fit_prior(x_train[:10000])
    g = np.random.default_rng(args.seed + 9)
    fig, ax = plt.subplots(2, 10, figsize=(8, 2))
    s_fit = vq.sample(10, prior=prior, rng=g)
    s_uni = vq.sample(10, rng=g)
    for j in range(10):
        ax[0, j].imshow(s_fit[j].reshape(h, w), cmap="gray")
        ax[1, j].imshow(s_uni[j].reshape(h, w), cmap="gray")
    for a in ax.ravel():
        a.set_xticks([]), a.set_yticks([])
    ax[0, 0].set_ylabel("fitted", fontsize=7)
    ax[1, 0].set_ylabel("uniform", fontsize=7)
    fig.suptitle("Samples: codes from a per-position categorical prior fitted to the training "
                 "codes (top), uniform (bottom)", fontsize=8)
    save_figure(fig, out / "14_vqvae_samples.png", t0)


if __name__ == "__main__":
    main()
