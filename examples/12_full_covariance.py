"""Full-covariance versus diagonal Gaussian encoders, where the truth is known and on MNIST.

Part 1, linear-Gaussian (hidden=(), likelihood="gaussian"): data from p(z) = N(0, I),
p(x|z) = N(W z + b, c I) with W's columns not orthogonal, so the true posterior p(z|x) has
correlated coordinates. The decoder is held at the truth and only the encoder is fitted (Adam,
full batch, eps drawn fresh each step, learning rate divided by 10 twice). The gap
log p(x) - ELBO is computed exactly with LinearGaussian: the full-covariance encoder closes it,
the diagonal one keeps KL(best diagonal q || p(z|x)), also computed in closed form. A second run
trains the decoder too (the diagonal VAE then rotates W until the posterior is diagonal).

Part 2, MNIST: the same 784-H-Z ReLU/Bernoulli VAE with posterior="diag" and "full", same
epochs, test ELBO (closed-form KL, one sample) after every epoch.

    python examples/12_full_covariance.py [--out DIR] [--epochs 10] [--steps 3000]
"""
import time

import numpy as np
from _family_common import fit, load_labelled, out_dir, parser, save_figure, save_text, table

import matplotlib.pyplot as plt
import numpyvae as nv


def linear_gaussian(steps, seed, train_decoder):
    rng = np.random.default_rng(seed)
    D, Z, N, c = 5, 2, 500, 0.5
    W = rng.standard_normal((D, Z))
    b = rng.standard_normal(D)
    x = nv.LinearGaussian(W, b, c).sample(N, rng=seed + 1)
    rows, curves = [], {}
    for post in ("full", "diag"):
        vae = nv.FamilyVAE(D, Z, hidden=(), likelihood="gaussian", c=c, posterior=post, seed=seed)
        vae.params["dec.out.W"][...] = W.T
        vae.params["dec.out.b"][...] = b
        dec = [n for n in vae.params if n.startswith("dec.")]
        opt = nv.optim.Adam(lr=1e-2)
        er = np.random.default_rng(seed + 2)
        curve = []
        for step in range(steps):
            if step in (steps * 2 // 3, steps * 5 // 6):
                opt.lr *= 0.1
            vae.forward(x, eps=er.standard_normal((10, N, Z)))
            vae.backward()
            if not train_decoder:
                for n in dec:
                    vae.grads[n][...] = 0      # Adam with zero gradients leaves them in place
            opt.step(vae.flat_params, vae.flat_grads)
            if step % 50 == 0 or step == steps - 1:
                curve.append((step, _gap(vae, x).mean()))
        lg = nv.LinearGaussian.from_vae(vae)
        qm, qlv = lg.optimal_diagonal_q(x)
        best_diag = lg.kl_to_posterior(x, qm, q_logvar=qlv).mean()
        gap = _gap(vae, x)
        rows.append({"decoder": "trained" if train_decoder else "fixed at truth",
                     "posterior": post, "gap log p(x) - ELBO": f"{gap.mean():.2e}",
                     "max over x": f"{gap.max():.2e}",
                     "KL(best diag q || p(z|x))": f"{best_diag:.2e}"})
        curves[post] = np.array(curve)
    return rows, curves


def _gap(vae, x):
    lg = nv.LinearGaussian.from_vae(vae)
    mu, L = vae.encode_full(x)
    return lg.log_marginal(x) - lg.elbo(x, mu, q_cov=L @ np.swapaxes(L, 1, 2))


def mnist(epochs, hidden, z, seed, n_test, data):
    d, source = load_labelled(data, seed=seed)
    x_test = (d.x_test if d.x_test is not None else d.x_val)[:n_test]
    rows, curves = [], {}
    for post in ("diag", "full"):
        vae = nv.FamilyVAE(784, z, hidden=(hidden,), posterior=post, seed=seed, dtype=np.float32)
        ev = []

        def on_epoch(ep, vae=vae, ev=ev):
            ev.append(vae.forward(x_test, eps=np.random.default_rng(seed + 5).standard_normal(
                (1, len(x_test), z)).astype(np.float32)).elbo)
        losses, secs = fit(vae, d.x_train, epochs, seed=seed, label=f"{post}", on_epoch=on_epoch)
        curves[post] = ev
        rows.append({"posterior": post, "epochs": epochs, "train -ELBO": f"{losses[-1]:.2f}",
                     "test ELBO": f"{ev[-1]:.2f}", "train s": f"{secs:.0f}"})
    return rows, curves, source, d.x_train.shape[0], len(x_test)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--z", type=int, default=20)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--data", choices=("auto", "mnist", "mnist-embedded"), default="auto")
    args = p.parse_args()
    out = out_dir(args)
    t0 = time.perf_counter()
    rows_fixed, curves = linear_gaussian(args.steps, args.seed, train_decoder=False)
    rows_joint, _ = linear_gaussian(args.steps, args.seed, train_decoder=True)
    txt = ("Part 1: linear-Gaussian, D=5, Z=2, N=500, c=0.5; Adam 1e-2 (/10 at 2/3 and 5/6 of "
           f"{args.steps} full-batch steps), K=10 fresh eps per step\n")
    txt += table(rows_fixed + rows_joint, list(rows_fixed[0]))
    print(txt, flush=True)
    rows_m, curves_m, source, n_train, n_test = mnist(args.epochs, args.hidden, args.z, args.seed,
                                                      args.n_test, args.data)
    txt2 = (f"Part 2: {source} (fixed binarization), train {n_train}, test {n_test}; 784-"
            f"{args.hidden}-{args.z} ReLU, Bernoulli, Adam 1e-3, batch 100, K=1, float32, "
            f"seed {args.seed}\n" + table(rows_m, list(rows_m[0])))
    print(txt2)
    save_text(out / "12_full_covariance.txt", txt + "\n\n" + txt2)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for post, c in curves.items():
        ax[0].semilogy(c[:, 0], np.maximum(c[:, 1], 1e-9), label=f"{post} q")
    best = float(rows_fixed[1]["KL(best diag q || p(z|x))"])
    ax[0].axhline(best, color="grey", ls=":", label="KL(best diag q || p(z|x))")
    ax[0].axhline(1e-3, color="k", lw=0.5, ls="--", label="1e-3 nats")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("log p(x) - ELBO (nats, exact)")
    ax[0].set_title("Linear-Gaussian, decoder at the truth")
    ax[0].legend(fontsize=8)
    for post, ev in curves_m.items():
        ax[1].plot(np.arange(1, len(ev) + 1), ev, "o-", label=f"{post} q")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("test ELBO (nats)")
    ax[1].set_title(f"{source}: diagonal vs full covariance")
    ax[1].legend(fontsize=8)
    save_figure(fig, out / "12_full_covariance.png", t0)


if __name__ == "__main__":
    main()
