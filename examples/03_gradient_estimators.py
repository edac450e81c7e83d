"""Score-function versus pathwise (reparameterization) gradients of E_q[f(z)].

Both estimate d/d(mu, logvar) E_{N(mu, diag e^logvar)}[f(z)] without bias; their variances
differ by orders of magnitude. Panel 1: a quadratic f with a known exact gradient.
Panel 2: f(z) = log p(x | z) of a trained MNIST decoder (784-200-10) for one validation image,
q = the encoder's q(z | x). The variance of the n-sample mean is plotted against n.

    python examples/03_gradient_estimators.py [--out examples/output]
"""

import time

import numpy as np
from _theory_common import load_binary_mnist, out_dir, parser, save_figure, save_text, train_vae

import matplotlib.pyplot as plt
from numpyvae.theory.estimators import format_table, pathwise_grad, score_function_grad

NS = (1, 4, 16, 64, 256, 1024)
REPS = 100


def per_sample(estimator, fn, mu, logvar, total, rng, chunk=8192):
    """(total, P) per-sample gradient estimates, P = 2 * Z (mu then logvar), drawn in chunks."""
    out = []
    done = 0
    while done < total:
        n = min(chunk, total - done)
        g_mu, g_lv = estimator(fn, mu, logvar, n, rng)
        out.append(np.concatenate([g_mu.reshape(n, -1), g_lv.reshape(n, -1)], axis=1))
        done += n
    return np.concatenate(out)


def variance_curve(samples):
    """Total variance (sum over coordinates) of the n-sample mean, from REPS disjoint groups
    (an empirical check of the per-sample variance / n law)."""
    res = []
    for n in NS:
        means = samples[: REPS * n].reshape(REPS, n, -1).mean(axis=1)
        res.append(means.var(axis=0, ddof=1).sum())
    return np.array(res)


def run_case(name, f, fg, mu, logvar, rng, exact=None):
    total = REPS * NS[-1]
    est = {
        "score function": per_sample(lambda fn, m, lv, n, r: score_function_grad(fn, m, lv, n, r), f, mu,
                                     logvar, total, rng),
        "score + baseline": per_sample(
            lambda fn, m, lv, n, r: score_function_grad(fn, m, lv, n, r, baseline=True), f, mu, logvar,
            total, rng),
        "pathwise": per_sample(lambda fn, m, lv, n, r: pathwise_grad(fn, m, lv, n, r), fg, mu, logvar,
                               total, rng),
    }
    curves = {k: (variance_curve(v), v.var(axis=0).sum()) for k, v in est.items()}
    rows = []
    for k, v in est.items():
        row = {"case": name, "estimator": k, "var per sample": float(v.var(axis=0).sum())}
        if exact is not None:
            err = v.mean(axis=0) - exact
            se = v.std(axis=0) / np.sqrt(len(v))
            row["max |mean-exact|/se"] = float(np.max(np.abs(err) / se))
        rows.append(row)
    ref = rows[2]["var per sample"]
    for r in rows:
        r["ratio to pathwise"] = r["var per sample"] / ref
    return curves, rows


def main():
    args = parser(__doc__.splitlines()[0]).parse_args()
    out = out_dir(args)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    # quadratic f(z) = -1/2 (z - a)^T A (z - a): E_q f has a closed-form gradient
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    a = np.array([0.5, -1.0])
    mu, logvar = np.array([1.5, 0.2]), np.array([-1.0, 0.3])

    def f(z):
        d = z - a
        return -0.5 * np.einsum("...i,ij,...j->...", d, A, d)

    def fg(z):
        return f(z), -(z - a) @ A

    exact = np.concatenate([-(mu - a) @ A, -0.5 * np.diag(A) * np.exp(logvar)])
    curves_q, rows_q = run_case("quadratic", f, fg, mu, logvar, rng, exact)

    x_train, x_val = load_binary_mnist("mnist-embedded", seed=args.seed)
    vae, _ = train_vae(x_train, hidden=(200,), z_dim=10, epochs=2, seed=args.seed,
                       cache=out / "theory_mnist_200_10.npz")
    vae = vae.astype(np.float64)
    x1 = x_val[:1].astype(np.float64)
    mu_x, lv_x = vae.encode(x1)  # (1, Z)

    def f_dec(z):
        return vae.log_px_given_z(x1, z)

    def fg_dec(z):
        return vae.log_px_given_z(x1, z, grad=True)

    curves_d, rows_d = run_case("MNIST decoder log p(x|z)", f_dec, fg_dec, mu_x, lv_x, rng)
    table = format_table(rows_q + rows_d, floatfmt="{:.4g}")
    print(table)
    save_text(out / "03_gradient_estimators.txt", table)

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, curves, title in ((ax[0], curves_q, "quadratic f, Z = 2"),
                                (ax[1], curves_d, "log p(x|z) of a trained MNIST decoder, Z = 10")):
        for (k, (v, per)), mk in zip(curves.items(), ("o", "s", "^")):
            axis.loglog(NS, v, mk + "-", label=k)
            axis.loglog(NS, per / np.array(NS), "k:", lw=0.8)
        axis.set_xlabel("n (samples averaged)")
        axis.set_ylabel("total variance of the gradient estimate")
        axis.set_title(title)
    ax[0].legend(title="dotted: per-sample variance / n")
    save_figure(fig, out / "03_gradient_estimators.png", t0)


if __name__ == "__main__":
    main()
