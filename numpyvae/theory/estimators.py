"""Estimators around the VAE: importance-sampled log p(x), gradient estimators, diagnostics.

* The log-mean-exp these estimators rest on is ``numpyvae.iwae.log_mean_exp``.
* ``log_likelihood``: the K-sample importance-sampling estimate
  log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),  z_k ~ q(z|x)  (Prabhu, "importance
  sampling"). K = 1 is the single-sample ELBO; its expectation rises with K towards
  log p(x). ``log_likelihood`` evaluates it in bounded memory (chunks over examples
  and over samples, accumulated in log space) so K = 5000 runs on full MNIST test sets.
* ``evaluate_bounds``: a table of the bound for several K.
* ``score_function_grad`` and ``pathwise_grad``: the two unbiased estimators of
  d/d(mu, logvar) E_q[f(z)] for a diagonal Gaussian q.
* ``elbo_energy_entropy``: ELBO = E_q[log p(x, z)] + H[q].
* ``kl_mc_error`` and ``elbo_gradient_variance``: Monte Carlo versus closed form.

Derivation: derivations/08_importance_sampling.md, eq. (8.5)
"""

from __future__ import annotations

import time

import numpy as np

from .. import kl as _kl
from .._progress import progress_bar
from ..iwae import iwae_bound
from .._validate import as_rng, positive_int, vae_and_x
from ..reparam import reparameterize, sample_eps

__all__ = [
    "log_likelihood",
    "evaluate_bounds",
    "format_table",
    "score_function_grad",
    "pathwise_grad",
    "elbo_energy_entropy",
    "kl_mc_error",
    "elbo_gradient_variance",
]

#: default cap on the floats of one decoder chunk (K_chunk * B_chunk * max(D, widest layer)):
#: 2.5e6 floats = 20 MB in float64. Far below any memory limit, and faster than larger chunks
#: (benchmarks/bench_loglik.py: about 35% faster than 25e6, which no longer fits in cache).
DEFAULT_MAX_FLOATS = 2_500_000


# ---------------------------------------------------------------------- helpers
def _widest(vae):
    return max((vae.x_dim,) + tuple(getattr(vae, "hidden", ()) or ()))


def _chunks(vae, B, k, batch_size, max_floats):
    """Example-chunk and sample-chunk sizes with K_chunk * B_chunk * width <= max_floats."""
    width = _widest(vae)
    if batch_size is None:
        batch_size = max(1, min(B, 100))
    batch_size = positive_int("batch_size", batch_size)
    max_floats = positive_int("max_floats", max_floats)
    bc = min(batch_size, B)
    kc = max(1, min(k, max_floats // (bc * width)))
    if kc * bc * width > max_floats:  # a single sample of the chunk is already too big
        bc = max(1, max_floats // width)
    return bc, kc


def log_likelihood_memory(vae, n, k, batch_size=None, max_floats=DEFAULT_MAX_FLOATS):
    """What ``log_likelihood(vae, x, k)`` on ``n`` examples holds in memory at its peak, before
    it runs: ``{"examples", "samples", "bytes"}``, the chunk sizes and an upper estimate of
    the bytes. One chunk of K_chunk samples for B_chunk examples passes the decoder at a time;
    its buffers (eps, z, every decoder layer's pre-activation and output, the log-likelihood's
    temporaries) are a few times K_chunk * B_chunk * (z_dim + decoder widths) floats, plus
    the float64 log-weights of the chunk and the (n,) results.

    Derivation: derivations/08_importance_sampling.md, eq. (8.5)
    """
    k = positive_int("k", k)
    n = positive_int("n", n)
    bc, kc = _chunks(vae, n, k, batch_size, max_floats)
    item = np.dtype(vae.dtype).itemsize
    widths = 3 * vae.z_dim + 2 * sum(getattr(vae, "hidden", ()) or ()) + 4 * vae.x_dim
    per_row = item * (2 * widths) + 8 * 6          # doubled: temporaries of the same size
    enc = bc * (vae.x_dim + 2 * sum(getattr(vae, "hidden", ()) or ()) + 4 * vae.z_dim) * item
    return {"examples": bc, "samples": kc, "bytes": int(kc * bc * per_row + enc + 16 * n)}


def _check_proposal(vae, x, q):
    if q is None:
        return None
    try:
        mu, logvar = (np.asarray(a, dtype=vae.dtype) for a in q)
    except (TypeError, ValueError) as exc:
        raise TypeError("q must be None or a pair (mu, logvar) of arrays") from exc
    shape = (x.shape[0], vae.z_dim)
    if mu.shape != shape or logvar.shape != shape:
        raise ValueError(f"q must be (mu, logvar), each of shape {shape}; got {mu.shape}, {logvar.shape}")
    return mu, logvar


def _lse_accumulate(vae, x, k, rng, batch_size, max_floats, with_second_moment, q=None,
                    progress=None, y=None):
    """log (1/K) sum_k w_k per example from K importance log-weights drawn in chunks.

    Returns (log mean w (B,), log mean w^2 (B,) or None). Each chunk of K_chunk samples gives
    log sum_k w_k over the chunk (``iwae_bound`` plus log K_chunk); the chunks' sums are merged
    with ``iwae_bound`` again, so only (K_chunk, B_chunk, width) floats are alive at a time.
    The weights come from the model's own ``log_weights`` (any posterior; labels y (B,) for
    a conditional model).
    """
    x = vae_and_x(vae, x)
    k = positive_int("k", k)
    q = _check_proposal(vae, x, q)
    B = x.shape[0]
    bc, kc = _chunks(vae, B, k, batch_size, max_floats)
    out1 = np.empty(B)
    out2 = np.empty(B) if with_second_moment else None
    report = _progress_reporter(progress, B, k)
    for s in range(0, B, bc):
        xb = x[s:s + bc]
        nb = xb.shape[0]
        given = {}
        if q is not None:
            given["q"] = (q[0][s:s + bc], q[1][s:s + bc])
        if y is not None:
            given["y"] = y[s:s + bc]
        sums1, sums2 = [], []        # log sum_k w_k (and w_k^2) of each chunk of samples
        for done in range(0, k, kc):
            kk = min(kc, k - done)
            eps = sample_eps(rng, kk, nb, vae.z_dim, dtype=vae.dtype)
            lw = vae.log_weights(xb, eps, **given).astype(np.float64)     # (kk, nb)
            sums1.append(iwae_bound(lw) + np.log(kk))
            if with_second_moment:
                sums2.append(iwae_bound(2 * lw) + np.log(kk))
        n_chunks = len(sums1)
        out1[s:s + nb] = iwae_bound(np.stack(sums1)) + np.log(n_chunks / k)
        if with_second_moment:
            out2[s:s + nb] = iwae_bound(np.stack(sums2)) + np.log(n_chunks / k)
        report(s + nb)
    report(None)
    return out1, out2


def _progress_reporter(progress, total, k):
    """A function done -> None for ``progress``: None/False (silent), True (a tqdm bar on
    stderr with examples/s and the time left) or a callable progress(done, total, seconds)."""
    if progress is None or progress is False:
        return lambda done: None
    t0 = time.perf_counter()
    if callable(progress):
        def report(done):
            if done is not None:
                progress(done, total, time.perf_counter() - t0)
        return report
    if progress is not True:
        raise TypeError(f"progress must be None, True/False or a callable, got {progress!r}")
    bar = progress_bar(total=total, desc=f"log p(x), K={k}", unit="ex", leave=True)

    def report(done):
        if done is None:
            bar.close()
        else:
            bar.update(done - bar.n)
    return report


# ------------------------------------------------------------- importance sampling
def log_likelihood(vae, x, k=5000, batch_size=None, rng=None, max_floats=DEFAULT_MAX_FLOATS,
                   return_stderr=False, q=None, progress=None, y=None):
    """Importance-sampled estimate of log p(x) with K samples from q(z|x): (B,) in nats.

    log (1/K) sum_{k=1}^K p(x|z_k) p(z_k) / q(z_k|x) with z_k ~ q(z|x), the K-sample bound
    ``numpyvae.iwae.iwae_bound`` of each example. Its expectation is <= log p(x), is
    non-decreasing in K, and at K = 1 equals the ELBO (estimated with one sample, including
    the Monte Carlo KL). The weights are the model's ``log_weights``: any posterior, and for
    a conditional model (labels y (B,)) the estimate of log p(x | y). rng: None (uses
    ``vae.rng``), int seed or Generator.

    For large K examples are processed in chunks of
    ``batch_size`` (default 100) and samples in chunks of K_chunk, chosen so that
    K_chunk * B_chunk * max(D, widest hidden layer) <= ``max_floats`` (default 2.5e6 floats,
    20 MB in float64; a few such buffers are alive at once); the K log-weights are merged
    with a running log-sum-exp. K = 5000 on 10,000 MNIST images therefore needs well under
    a few hundred MB, not K * B * D = 3.9e10 floats.

    With ``return_stderr=True`` also returns a delta-method standard error per example,
    sqrt((mean w^2 / (mean w)^2 - 1) / K), computed from the same weights (it understates
    the error when the proposal is poor and the weights are heavy-tailed). q: None (the
    encoder's q(z|x)) or a proposal (mu, logvar), each (B, Z), used instead (e.g. per-example
    fitted posteriors; the bound holds for any proposal; plain VAE only).

    progress: None (silent), True (a progress bar on stderr with the time left) or a callable
    ``progress(done, total, seconds)`` called after each chunk of examples (e.g. to log the
    progress of an L_5000 evaluation of 10,000 test images, which takes minutes).

    Derivation: derivations/08_importance_sampling.md, eq. (8.5)
    Derivation: derivations/08_importance_sampling.md, eq. (8.1)
    Derivation: derivations/08_importance_sampling.md, eq. (8.2)
    """
    l1, l2 = _lse_accumulate(vae, x, k, as_rng(rng, vae.rng), batch_size, max_floats, return_stderr, q,
                             progress, y)
    if not return_stderr:
        return l1
    rel_var = np.maximum(np.exp(l2 - 2 * l1) - 1.0, 0.0)
    return l1, np.sqrt(rel_var / k)


def evaluate_bounds(vae, x, ks=(1, 10, 100, 1000, 5000), rng=None, batch_size=None,
                    max_floats=DEFAULT_MAX_FLOATS, n_elbo_samples=100, keep_values=False):
    """Table of the importance-sampled bound for several K on the examples x: list of dicts.

    One row per K with keys: "k", "mean" (mean over examples of the K-sample bound, nats),
    "stderr" (standard error of that mean over examples), "seconds". A first row with
    k="elbo" holds the closed-form-KL ELBO E_q[log p(x|z)] - KL(q||p(z)) estimated with
    ``n_elbo_samples`` samples per example (the quantity K = 1 estimates). The last K is the
    log-likelihood estimate; the gap to the ELBO row is the looseness of the bound.
    With ``keep_values=True`` each row also holds "values": the (B,) per-example numbers
    (for paired comparisons between rows). Print with ``format_table``.

    Derivation: derivations/08_importance_sampling.md, eq. (8.5)
    """
    x = vae_and_x(vae, x)
    g = as_rng(rng, vae.rng)
    ks = tuple(positive_int("ks entries", kk) for kk in ks)
    if not ks:
        raise ValueError("ks must hold at least one K")
    rows = []
    t0 = time.perf_counter()
    elbo = np.empty(x.shape[0])
    bc = 100 if batch_size is None else positive_int("batch_size", batch_size)
    for s in range(0, x.shape[0], bc):
        xb = x[s:s + bc]
        eps = sample_eps(g, positive_int("n_elbo_samples", n_elbo_samples), xb.shape[0], vae.z_dim,
                         dtype=vae.dtype)
        elbo[s:s + bc] = vae.forward(xb, eps=eps).elbo_per_example
    n = x.shape[0]
    se = lambda v: float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")  # noqa: E731
    rows.append({"k": "elbo", "mean": float(elbo.mean()), "stderr": se(elbo),
                 "seconds": time.perf_counter() - t0})
    if keep_values:
        rows[-1]["values"] = elbo
    for kk in ks:
        t0 = time.perf_counter()
        v = log_likelihood(vae, x, k=kk, batch_size=batch_size, rng=g, max_floats=max_floats)
        rows.append({"k": kk, "mean": float(v.mean()), "stderr": se(v),
                     "seconds": time.perf_counter() - t0})
        if keep_values:
            rows[-1]["values"] = v
    return rows


def format_table(rows, columns=None, floatfmt="{:.4f}"):
    """Plain-text table of a list of dicts (e.g. from ``evaluate_bounds``): str.

    Columns: the scalar keys of all rows in order of first appearance (array-valued entries
    such as "values" are left out unless named in ``columns``); a missing key prints blank.

    Derivation: derivations/08_importance_sampling.md, eq. (8.5)
    """
    if not rows:
        return ""
    if columns is None:  # union of the scalar keys, in order of first appearance
        columns = []
        for r in rows:
            columns += [c for c, v in r.items() if np.ndim(v) == 0 and c not in columns]
    columns = list(columns)

    def cell(r, c):
        if c not in r:
            return ""
        v = r[c]
        return floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v)

    cells = [[cell(r, c) for c in columns] for r in rows]
    widths = [max(len(str(c)), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(str(c).rjust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


# ------------------------------------------------------------- gradient estimators
def _check_q(mu, logvar):
    mu = np.asarray(mu, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    if mu.shape != logvar.shape or mu.ndim < 1:
        raise ValueError(f"mu and logvar must have the same shape (..., Z), got {mu.shape} and {logvar.shape}")
    return mu, logvar


def _q_draws(mu, logvar, n, rng):
    """Checked (mu, logvar), eps ~ N(0, I) of shape (n, ..., Z), and sigma = exp(logvar / 2)."""
    mu, logvar = _check_q(mu, logvar)
    eps = as_rng(rng).standard_normal((n,) + mu.shape)
    return mu, logvar, eps, np.exp(0.5 * logvar)


def score_function_grad(f, mu, logvar, n, rng=None, baseline=False):
    """Score-function (REINFORCE / likelihood-ratio) estimates of d/d(mu, logvar) E_q[f(z)].

    q = N(mu, diag exp(logvar)); mu, logvar: (..., Z). f maps z (n, ..., Z) -> (n, ...).
    Uses d/dtheta E_q[f] = E_q[f(z) d/dtheta log q(z)], with z = mu + sigma eps:
      d log q / d mu = eps / sigma,   d log q / d logvar = (eps^2 - 1) / 2.
    baseline=True subtracts, for each sample, the mean of f over the other n - 1 samples
    (a leave-one-out control variate that keeps the estimator unbiased; needs n >= 2).
    Returns (g_mu, g_logvar): per-sample estimates, each (n, ..., Z); their mean over axis 0
    is the estimate, their variance over axis 0 the per-sample variance.

    Derivation: derivations/04_reparameterization.md, eq. (4.4)
    """
    n = positive_int("n", n)
    mu, logvar, eps, sigma = _q_draws(mu, logvar, n, rng)
    fz = np.asarray(f(mu + sigma * eps), dtype=np.float64)
    if fz.shape != (n,) + mu.shape[:-1]:
        raise ValueError(f"f must return shape {(n,) + mu.shape[:-1]}, got {fz.shape}")
    if baseline:
        if n < 2:
            raise ValueError("baseline=True needs n >= 2 samples")
        fz = fz - (fz.sum(axis=0, keepdims=True) - fz) / (n - 1)
    fz = fz[..., None]
    return fz * eps / sigma, fz * 0.5 * (eps * eps - 1.0)


def pathwise_grad(f_and_grad, mu, logvar, n, rng=None):
    """Pathwise (reparameterization) estimates of d/d(mu, logvar) E_q[f(z)].

    q = N(mu, diag exp(logvar)); mu, logvar: (..., Z). f_and_grad maps z (n, ..., Z) to
    (f(z) (n, ...), df/dz (n, ..., Z)). With z = mu + sigma eps the chain rule gives
      g_mu = df/dz,   g_logvar = df/dz * eps * sigma / 2.
    Returns (g_mu, g_logvar): per-sample estimates, each (n, ..., Z).

    Derivation: derivations/04_reparameterization.md, eq. (4.5)
    Derivation: derivations/04_reparameterization.md, eq. (4.2)
    """
    n = positive_int("n", n)
    mu, logvar, eps, sigma = _q_draws(mu, logvar, n, rng)
    _, dfdz = f_and_grad(mu + sigma * eps)
    dfdz = np.asarray(dfdz, dtype=np.float64)
    if dfdz.shape != eps.shape:
        raise ValueError(f"f_and_grad must return df/dz of shape {eps.shape}, got {dfdz.shape}")
    return dfdz, dfdz * eps * (0.5 * sigma)


# ------------------------------------------------------------- energy + entropy
def elbo_energy_entropy(vae, x, k=1, rng=None):
    """ELBO written as energy + entropy: E_q[log p(x, z)] + H[q], per example.

    The energy E_q[log p(x|z) + log p(z)] is a K-sample Monte Carlo average; the entropy of
    the diagonal Gaussian q(z|x) is closed form, H = 1/2 sum_j (1 + log 2 pi + logvar_j).
    x: (B, D) -> (elbo (B,), energy (B,), entropy (B,)). Its expectation equals
    E_q[log p(x|z)] - KL(q || p(z)) (``VAE.forward(...).elbo_per_example``).

    Derivation: derivations/03_elbo.md, eq. (3.7)
    """
    x = vae_and_x(vae, x)
    k = positive_int("k", k)
    g = as_rng(rng, vae.rng)
    mu, logvar = vae.encode(x)
    z = reparameterize(mu, logvar, sample_eps(g, k, x.shape[0], vae.z_dim, dtype=vae.dtype))
    energy = np.mean(vae.log_px_given_z(x, z) + _kl.log_std_normal(z), axis=0)
    entropy = 0.5 * np.sum(1.0 + _kl.LOG_2PI + logvar, axis=-1)
    return energy + entropy, energy, entropy


# ------------------------------------------------------------- MC versus closed form
def kl_mc_error(mu, logvar, ns=(1, 10, 100, 1000, 10000), n_rep=200, rng=None):
    """Error of the Monte Carlo KL(q || N(0, I)) against the closed form, per sample size.

    mu, logvar: (Z,) one diagonal Gaussian q. For each n in ``ns`` the estimate
    (1/n) sum_i [log q(z_i) - log p(z_i)], z_i ~ q, is repeated ``n_rep`` times.
    Returns a list of dicts with keys "n", "kl_closed", "mc_mean" (mean of the estimates),
    "bias" (mc_mean - closed), "rmse" (root mean square error) and "sd" (standard deviation
    of one estimate). The RMSE falls like 1/sqrt(n): the estimator is unbiased.

    Derivation: derivations/02_kl.md, eq. (2.7)
    """
    mu, logvar = _check_q(mu, logvar)
    if mu.ndim != 1:
        raise ValueError(f"mu and logvar must be 1-D (Z,), got shape {mu.shape}")
    n_rep = positive_int("n_rep", n_rep)
    g = as_rng(rng)
    closed = float(_kl.kl_normal_std(mu, logvar))
    rows = []
    for n in ns:
        n = positive_int("ns entries", n)
        est = np.empty(n_rep)
        for r in range(n_rep):
            eps = g.standard_normal((n, 1, mu.size))
            z = reparameterize(mu[None], logvar[None], eps)
            est[r] = _kl.kl_monte_carlo(z, mu[None], logvar[None])[0].mean()
        rows.append({"n": n, "kl_closed": closed, "mc_mean": float(est.mean()),
                     "bias": float(est.mean() - closed),
                     "rmse": float(np.sqrt(np.mean((est - closed) ** 2))),
                     "sd": float(est.std(ddof=1))})
    return rows


def elbo_gradient_variance(vae, x, ks=(1, 5, 50), n_rep=50, rng=None, kl="closed"):
    """Variance of the K-sample ELBO gradient (wrt all parameters) over fresh eps draws.

    For each K the gradient of ``vae.loss(x, eps)`` (mean over the batch x) is computed
    ``n_rep`` times with independent eps (K, B, Z). Returns a list of dicts with keys "k",
    "total_var" (sum over parameters of the per-coordinate variance), "mean_grad_sq"
    (squared norm of the mean gradient), "snr" (mean_grad_sq / total_var) and
    "seconds". The variance falls roughly like 1/K. Leaves ``vae.grads`` overwritten.

    Derivation: derivations/03_elbo.md, eq. (3.9)
    """
    x = vae_and_x(vae, x)
    n_rep = positive_int("n_rep", n_rep)
    if n_rep < 2:
        raise ValueError("n_rep must be >= 2 to estimate a variance")
    g = as_rng(rng, vae.rng)
    rows = []
    for kk in ks:
        kk = positive_int("ks entries", kk)
        t0 = time.perf_counter()
        grads = np.empty((n_rep, vae.flat_grads.size))
        for r in range(n_rep):
            eps = sample_eps(g, kk, x.shape[0], vae.z_dim, dtype=vae.dtype)
            vae.forward(x, eps=eps, kl=kl)
            vae.backward()
            grads[r] = vae.flat_grads
        var = grads.var(axis=0, ddof=1).sum()
        msq = float(np.sum(grads.mean(axis=0) ** 2))
        rows.append({"k": kk, "total_var": float(var), "mean_grad_sq": msq,
                     "snr": msq / float(var), "seconds": time.perf_counter() - t0})
    return rows
