"""Amortized versus per-example (local) variational inference.

A VAE's encoder predicts q(z|x) = N(mu(x), diag exp(logvar(x))) for every x with one shared
network: the cost of inference is "amortized" over the data set (Prabhu, "Amortized
Inference"). The price is that the encoder's q need not be the best diagonal Gaussian for
each x. Holding the decoder fixed, ``fit_local_posterior`` optimises a separate
(mu_i, logvar_i) for each example by stochastic gradient ascent on its own ELBO, and
``amortization_gap`` reports how many nats the encoder leaves on the table:

    log p(x) - ELBO(q_encoder) = [log p(x) - ELBO(q*)]  +  [ELBO(q*) - ELBO(q_encoder)]
                                  approximation gap         amortization gap

Derivation: derivations/03_elbo.md, eq. (3.10)
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validate import positive_int, vae_and_x
from ..optim import Adam
from ..reparam import sample_eps
from .estimators import log_likelihood

__all__ = ["fit_local_posterior", "amortization_gap"]


def fit_local_posterior(vae, x, steps=300, lr=0.05, k=1, seed=0, init=None, lr_decay=True,
                        average=0.5, return_history=False):
    """Per-example q_i = N(mu_i, diag exp(logvar_i)) fitted to maximise each example's ELBO.

    The decoder (all of ``vae``'s parameters) is held fixed; only the (B, Z) arrays mu and
    logvar move, by Adam on the K-sample ELBO with the closed-form KL, using
    ``vae.forward(x, eps, q=(mu, logvar))`` and the gradients ``vae.dmu``, ``vae.dlogvar``
    from ``vae.backward()``. Each example's ELBO depends only on its own (mu_i, logvar_i), so
    one batched Adam run is B independent optimisations. (The model's loss averages over
    the batch; the gradient is multiplied by B so each example sees the gradient of its own
    ELBO.)

    x: (B, D); steps, k: positive ints; lr: Adam step size, decayed linearly to 10% over the
    run when ``lr_decay`` (so the stochastic iterates settle); seed: int for the eps draws;
    init: (mu, logvar) to start from, default the encoder's output ``vae.encode(x)``;
    average: fraction of the last iterates that are averaged into the result (Polyak-Ruppert
    averaging, which removes most of the jitter of the noisy final iterates); 0 returns the
    last iterate.
    Returns (mu, logvar), each (B, Z) float64; with ``return_history=True`` also the list
    of the mean K-sample ELBO at each step. Overwrites ``vae.grads`` (not the parameters).

    Derivation: derivations/03_elbo.md, eq. (3.10)
    Derivation: derivations/07_objective_backward.md, eq. (7.1)
    """
    x = vae_and_x(vae, x)
    steps, k = positive_int("steps", steps), positive_int("k", k)
    if not (isinstance(lr, numbers.Real) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    B, Z = x.shape[0], vae.z_dim
    mu0, lv0 = vae.encode(x) if init is None else init
    mu0, lv0 = np.asarray(mu0, dtype=np.float64), np.asarray(lv0, dtype=np.float64)
    if mu0.shape != (B, Z) or lv0.shape != (B, Z):
        raise ValueError(f"init must be (mu, logvar), each ({B}, {Z}); got {mu0.shape}, {lv0.shape}")
    theta = np.concatenate([mu0.ravel(), lv0.ravel()])  # one flat buffer for the optimizer
    mu, logvar = theta[: B * Z].reshape(B, Z), theta[B * Z:].reshape(B, Z)  # views
    grad = np.empty_like(theta)
    g_mu, g_lv = grad[: B * Z].reshape(B, Z), grad[B * Z:].reshape(B, Z)
    opt = Adam(lr=lr)
    rng = np.random.default_rng(seed)
    if not (isinstance(average, numbers.Real) and 0.0 <= average < 1.0):
        raise ValueError(f"average must be a fraction in [0, 1), got {average!r}")
    n_avg = int(round(average * steps))
    theta_sum = np.zeros_like(theta)
    history = []
    for t in range(steps):
        if lr_decay:
            opt.lr = lr * (1.0 - 0.9 * t / max(steps - 1, 1))
        eps = sample_eps(rng, k, B, Z, dtype=vae.dtype)
        terms = vae.forward(x, eps=eps, q=(mu, logvar))
        vae.backward()
        g_mu[...] = vae.dmu * B   # gradient of each example's own loss (-ELBO)
        g_lv[...] = vae.dlogvar * B
        opt.step(theta, grad)
        if t >= steps - n_avg:
            theta_sum += theta
        if return_history:
            history.append(terms.elbo)
    if n_avg > 0:
        theta[...] = theta_sum / n_avg
    out = (mu.copy(), logvar.copy())
    return (out + (history,)) if return_history else out


def amortization_gap(vae, x, steps=300, lr=0.05, k_fit=1, k_eval=1000, seed=0, k_ll=0):
    """Encoder ELBO, per-example optimised ELBO and their gap, in nats.

    Fits local posteriors with ``fit_local_posterior`` (decoder fixed, start at the encoder)
    and evaluates both q's with the same ``k_eval`` noise draws. Returns a dict of (B,)
    arrays "elbo_encoder", "elbo_local", "amortization_gap" (= local - encoder, >= 0 up to
    Monte Carlo and optimisation error), "gap_stderr" (its paired Monte Carlo standard
    error) and, if ``k_ll`` > 0, "log_likelihood" (an
    importance-sampled estimate with ``k_ll`` samples from the fitted local q's as proposals) and
    "approximation_gap" (log_likelihood - elbo_local); plus "summary": a dict of means.

    Derivation: derivations/03_elbo.md, eq. (3.10)
    """
    x = vae_and_x(vae, x)
    k_eval = positive_int("k_eval", k_eval)
    mu_e, lv_e = vae.encode(x)
    mu_l, lv_l = fit_local_posterior(vae, x, steps=steps, lr=lr, k=k_fit, seed=seed)
    eps = sample_eps(np.random.default_rng([seed, 1]), k_eval, x.shape[0], vae.z_dim, dtype=vae.dtype)
    t_enc = vae.forward(x, eps=eps, q=(mu_e, lv_e))
    lp_enc = t_enc.log_px_z.astype(np.float64)
    e_enc = t_enc.elbo_per_example.astype(np.float64)
    t_loc = vae.forward(x, eps=eps, q=(mu_l, lv_l))
    e_loc = t_loc.elbo_per_example.astype(np.float64)
    # paired (common-noise) standard error of the gap; the KL parts are exact
    d = t_loc.log_px_z.astype(np.float64) - lp_enc
    se = d.std(axis=0, ddof=1) / np.sqrt(k_eval) if k_eval > 1 else np.full(len(x), np.nan)
    out = {"elbo_encoder": e_enc, "elbo_local": e_loc, "amortization_gap": e_loc - e_enc,
           "gap_stderr": se}
    if k_ll:
        # proposal: the fitted local q's, which are closer to the posterior than the encoder's
        # (with the encoder's q a finite-K estimate can fall below the local ELBO)
        ll = log_likelihood(vae, x, k=positive_int("k_ll", k_ll), rng=np.random.default_rng([seed, 2]),
                            q=(mu_l, lv_l))
        out["log_likelihood"] = ll
        out["approximation_gap"] = ll - e_loc
    out["summary"] = {key: float(np.mean(v)) for key, v in out.items()}
    return out
