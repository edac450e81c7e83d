"""The ELBO gap, exactly: log p(x) = ELBO(q) + KL(q || p(z|x)) on a linear-Gaussian model.

Part A walks q from a poor Gaussian to the exact posterior and prints / plots the three terms
of Shah's Eq. (8), all in closed form. Part B trains a linear VAE (hidden=(), Gaussian decoder)
with Adam on data from a known model and follows its exact ELBO and exact log-likelihood
towards the probabilistic-PCA maximum likelihood.

    python examples/01_linear_gaussian_gap.py [--out examples/output]
"""

import time

import numpy as np
from _theory_common import nv, out_dir, parser, save_figure, save_text

import matplotlib.pyplot as plt
from numpyvae.theory.estimators import format_table
from numpyvae.theory.linear_gaussian import LinearGaussian, ppca_max_log_likelihood


def part_a(rng):
    lg = LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5), 0.3)
    x = lg.sample(1, rng)
    m, C = lg.posterior(x)
    q0_mu, q0_cov = m + np.array([[1.5, -1.0]]), np.diag([2.0, 0.3])
    ts = np.linspace(0, 1, 41)
    rows, logp = [], float(lg.log_marginal(x)[0])
    for t in ts:
        mu = (1 - t) * q0_mu + t * m
        cov = (1 - t) * q0_cov + t * C
        elbo = float(lg.elbo(x, mu, q_cov=cov)[0])
        kl = float(lg.kl_to_posterior(x, mu, q_cov=cov)[0])
        rows.append({"t": float(t), "log p(x)": logp, "ELBO": elbo, "KL(q||post)": kl,
                     "logp-ELBO-KL": logp - elbo - kl})
    return rows


def part_b(rng, steps=4000):
    c_true = 0.1
    truth = LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5), c_true)
    x = truth.sample(3000, rng)
    ml = ppca_max_log_likelihood(x, 2, c=c_true)
    vae = nv.VAE(5, 2, hidden=(), likelihood="gaussian", c=c_true, seed=0)
    opt = nv.optim.Adam(lr=0.01)
    trace = []
    for s in range(steps + 1):
        if s % 50 == 0:
            lg = LinearGaussian.from_vae(vae)
            mu, lv = vae.encode(x)
            q_opt = lg.optimal_diagonal_q(x)
            trace.append((s, lg.elbo(x, mu, lv).mean(), lg.elbo(x, *q_opt).mean(), lg.log_marginal(x).mean()))
        if s == steps:
            break
        opt.lr = 0.01 * (1 - 0.95 * s / steps)
        vae.forward(x[rng.choice(len(x), 300, replace=False)])
        vae.backward()
        opt.step(vae.flat_params, vae.flat_grads)
    W = LinearGaussian.from_vae(vae).W
    return np.array(trace), ml, W


def main():
    args = parser(__doc__.splitlines()[0]).parse_args()
    out = out_dir(args)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    rows = part_a(rng)
    table_a = format_table(rows[::8], floatfmt="{:.6g}")
    print("Part A: q moves from a poor Gaussian (t=0) to the exact posterior (t=1)")
    print(table_a)
    resid = max(abs(r["logp-ELBO-KL"]) for r in rows)
    print(f"max |log p(x) - ELBO - KL| over all 41 q's: {resid:.2e}")

    trace, ml, W = part_b(rng)
    s, elbo_enc, elbo_opt, ll = trace.T
    print("\nPart B: linear VAE (5 -> 2, c = 0.1) trained with Adam on 3000 points of a known model")
    tb = [{"step": int(a), "ELBO(encoder)": b, "ELBO(best diag q)": c, "log p(x)": d, "PPCA ML": ml}
          for a, b, c, d in trace[::10]]
    if tb[-1]["step"] != int(s[-1]):
        tb.append({"step": int(s[-1]), "ELBO(encoder)": elbo_enc[-1], "ELBO(best diag q)": elbo_opt[-1],
                   "log p(x)": ll[-1], "PPCA ML": ml})
    table_b = format_table(tb)
    print(table_b)
    gram = W.T @ W
    print(f"final: ML - ELBO = {ml - elbo_enc[-1]:.4f} nats/example, ML - log p = {ml - ll[-1]:.4f}; "
          f"decoder columns nearly orthogonal: |off-diag(W^T W)| / diag = "
          f"{abs(gram[0, 1]) / np.sqrt(gram[0, 0] * gram[1, 1]):.3f}")
    save_text(out / "01_linear_gaussian_gap.txt",
              "Part A\n" + table_a + f"\nmax residual {resid:.2e}\n\nPart B\n" + table_b)

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    t = [r["t"] for r in rows]
    ax[0].plot(t, [r["log p(x)"] for r in rows], "k-", label="log p(x) (exact)")
    ax[0].plot(t, [r["ELBO"] for r in rows], "C0-", label="ELBO(q)")
    ax[0].fill_between(t, [r["ELBO"] for r in rows], [r["log p(x)"] for r in rows], color="C1", alpha=0.3,
                       label="KL(q || p(z|x)) = the gap")
    ax[0].set_xlabel("t  (q_t interpolates from a poor q to the posterior)")
    ax[0].set_ylabel("nats")
    ax[0].set_title("Shah Eq. (8): log p(x) = ELBO + KL, closed form")
    ax[0].legend()
    ax[1].plot(s, elbo_enc, "C0-", label="ELBO with the encoder's q")
    ax[1].plot(s, ll, "C3-", lw=3, alpha=0.6, label="exact log p(x) of the decoder")
    ax[1].plot(s, elbo_opt, "C2--", label="ELBO with best diagonal q (meets log p:\n"
               "the decoder's columns turn orthogonal)")
    ax[1].axhline(ml, color="k", ls=":", label=f"PPCA maximum likelihood ({ml:.3f})")
    ax[1].set_ylim(ml - 1.0, ml + 0.1)
    ax[1].set_xlabel("Adam step")
    ax[1].set_ylabel("mean nats per example")
    ax[1].set_title("linear VAE training reaches the PPCA optimum")
    ax[1].legend(loc="lower right")
    save_figure(fig, out / "01_linear_gaussian_gap.png", t0)


if __name__ == "__main__":
    main()
