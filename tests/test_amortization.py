"""Amortized (encoder) versus per-example optimised q(z|x)."""

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.theory import amortization as am
from numpyvae.theory.linear_gaussian import LinearGaussian


def _trained_small_vae():
    """A tiny Bernoulli VAE (16-32-2) trained briefly on noisy copies of 4 binary prototypes."""
    rng = np.random.default_rng(0)
    protos = (rng.random((4, 16)) < 0.5).astype(float)
    x = np.abs(protos[rng.integers(0, 4, 600)] - (rng.random((600, 16)) < 0.1))
    vae = nv.VAE(16, 2, hidden=(32,), likelihood="bernoulli", activation="tanh", seed=0)
    opt = nv.optim.Adam(lr=0.01)
    for _ in range(600):
        vae.forward(x[rng.choice(600, 64, replace=False)])
        vae.backward()
        opt.step(vae.flat_params, vae.flat_grads)
    return vae, x


@pytest.mark.slow
def test_local_fit_beats_the_encoder_with_common_random_numbers():
    vae, x = _trained_small_vae()
    before = vae.flat_params.copy()
    r = am.amortization_gap(vae, x[:50], steps=300, lr=0.05, k_fit=20, k_eval=2000, seed=0)
    np.testing.assert_array_equal(vae.flat_params, before)  # the decoder (and encoder) stayed fixed
    gap, se = r["amortization_gap"], r["gap_stderr"]
    # per example: never below the encoder beyond paired Monte Carlo noise
    assert np.all(gap > -3 * se), (gap / se).min()
    # on average clearly positive
    assert gap.mean() > 5 * np.sqrt(np.sum(se**2)) / len(gap)
    assert r["summary"]["amortization_gap"] == pytest.approx(gap.mean())


def test_gap_decomposition_with_log_likelihood():
    vae, x = _trained_small_vae()
    r = am.amortization_gap(vae, x[:20], steps=200, lr=0.05, k_fit=10, k_eval=500, seed=1, k_ll=2000)
    total = r["log_likelihood"] - r["elbo_encoder"]
    np.testing.assert_allclose(total, r["approximation_gap"] + r["amortization_gap"], atol=1e-12)
    # a diagonal Gaussian q cannot match a non-Gaussian posterior: positive on average
    # (single examples can dip below 0 by the Monte Carlo error of the two estimates)
    assert r["summary"]["approximation_gap"] > 0


def _linear_vae_with_poor_encoder():
    vae = nv.VAE(5, 2, hidden=(), likelihood="gaussian", c=0.5, seed=0)
    rng = np.random.default_rng(100)
    vae.params["dec.out.W"][...] = rng.normal(size=(2, 5))
    vae.params["dec.out.b"][...] = rng.normal(size=5)
    lg = LinearGaussian.from_vae(vae)
    A = lg.W @ lg.post_cov / lg.c
    vae.params["enc.mu.W"][...] = A
    vae.params["enc.mu.b"][...] = -lg.b @ A + 0.4  # encoder means off by 0.4
    vae.params["enc.logvar.W"][...] = 0.0
    vae.params["enc.logvar.b"][...] = np.log(3.0 * np.diag(lg.post_cov))  # too wide
    return vae, lg


def test_local_fit_reaches_the_optimal_diagonal_q_of_a_linear_gaussian_model():
    vae, lg = _linear_vae_with_poor_encoder()
    x = lg.sample(40, np.random.default_rng(0))
    mu_opt, lv_opt = lg.optimal_diagonal_q(x)
    mu_e, lv_e = vae.encode(x)
    mu, lv = am.fit_local_posterior(vae, x, steps=1000, lr=0.05, k=50, seed=1)
    best = lg.elbo(x, mu_opt, lv_opt)
    enc = lg.elbo(x, mu_e, lv_e)
    fit = lg.elbo(x, mu, lv)
    assert np.all(best - enc > 0.5)                     # the encoder starts well below
    assert np.all(fit <= best + 1e-12)                  # the optimum is the diagonal-optimal q
    assert np.all(best - fit < 1e-3)                    # and the fit gets there
    assert np.max(np.abs(mu - mu_opt)) < 0.02
    assert np.max(np.abs(lv - lv_opt)) < 0.05


def test_history_and_bad_inputs():
    vae, lg = _linear_vae_with_poor_encoder()
    x = lg.sample(10, np.random.default_rng(0))
    mu, lv, hist = am.fit_local_posterior(vae, x, steps=50, k=5, return_history=True)
    assert len(hist) == 50 and np.mean(hist[-10:]) > np.mean(hist[:10])
    with pytest.raises(ValueError, match="steps"):
        am.fit_local_posterior(vae, x, steps=0)
    with pytest.raises(ValueError, match="lr"):
        am.fit_local_posterior(vae, x, lr=-1.0)
    with pytest.raises(ValueError, match="init"):
        am.fit_local_posterior(vae, x, init=(np.zeros((3, 2)), np.zeros((3, 2))))
    with pytest.raises(ValueError, match="x"):
        am.amortization_gap(vae, x[:, :3])
