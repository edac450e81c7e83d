"""Reparameterization: backward against finite differences, sampling moments, input checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from numpyvae import reparam
from numpyvae.gradcheck import check_function, rel_error

from _helpers import FAST, PASS, batch, dims, ksamp, seeds


def _draw(seed, k, b, z):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((b, z))
    logvar = rng.uniform(-2, 2, (b, z))
    eps = rng.standard_normal((k, b, z))
    G = rng.standard_normal((k, b, z))
    return mu, logvar, eps, G


@FAST
@given(k=ksamp, b=batch, z=dims, seed=seeds)
def test_reparameterize_backward_gradcheck(k, b, z, seed):
    mu, logvar, eps, G = _draw(seed, k, b, z)

    def f():  # sum(z * G) has dL/dz = G; eps is held fixed
        return float(np.sum(reparam.reparameterize(mu, logvar, eps) * G))

    dmu, dlogvar = reparam.reparameterize_backward(G, logvar, eps)
    assert dmu.shape == mu.shape and dlogvar.shape == logvar.shape
    rep = check_function(f, dmu, mu, name="mu")
    rep.rows += check_function(f, dlogvar, logvar, name="logvar").rows
    assert rep.max_error < PASS, str(rep)


def test_reparameterize_backward_mutations_are_caught():
    mu, logvar, eps, G = _draw(0, 3, 4, 5)

    def f():
        return float(np.sum(reparam.reparameterize(mu, logvar, eps) * G))

    from numpyvae.gradcheck import numerical_grad
    n_lv = numerical_grad(f, logvar)
    n_mu = numerical_grad(f, mu)
    sigma = np.exp(0.5 * logvar)
    wrong_lv = [(G * eps).sum(0) * sigma,              # factor 2 (forgot the 1/2)
                (G * eps).sum(0) * 0.5,                # dropped sigma
                (G * eps).sum(0) * 0.5 * np.exp(logvar)]  # variance instead of std
    for w in wrong_lv:
        assert rel_error(w, n_lv) >= 1e-3
    assert rel_error(G[0], n_mu) >= 1e-3          # forgot the sum over K (K = 3 here)


def test_same_eps_gives_same_z():
    mu, logvar, eps, _ = _draw(1, 2, 3, 4)
    z1 = reparam.reparameterize(mu, logvar, eps)
    z2 = reparam.reparameterize(mu.copy(), logvar.copy(), eps.copy())
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_allclose(z1, mu + np.exp(logvar / 2) * eps)


def test_sample_eps_reproducible_and_shaped():
    a = reparam.sample_eps(np.random.default_rng(5), 3, 4, 2)
    b = reparam.sample_eps(np.random.default_rng(5), 3, 4, 2)
    c = reparam.sample_eps(np.random.default_rng(6), 3, 4, 2)
    assert a.shape == (3, 4, 2) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert reparam.sample_eps(np.random.default_rng(0), 1, 1, 1, np.float32).dtype == np.float32


def test_reparameterized_samples_have_mean_mu_and_variance_exp_logvar():
    rng = np.random.default_rng(123)
    n = 10 ** 5
    mu = np.array([[0.0, 1.5, -2.0], [3.0, -0.5, 0.2]])
    logvar = np.array([[0.0, -1.0, 1.5], [-3.0, 0.7, 2.0]])
    eps = reparam.sample_eps(rng, n, *mu.shape)
    z = reparam.reparameterize(mu, logvar, eps)
    var = np.exp(logvar)
    se_mean = np.sqrt(var / n)
    se_var = var * np.sqrt(2.0 / (n - 1))     # SE of the sample variance of a Gaussian
    assert np.all(np.abs(z.mean(0) - mu) < 4 * se_mean)
    assert np.all(np.abs(z.var(0, ddof=1) - var) < 4 * se_var)


def test_bad_shapes_raise():
    mu = np.zeros((2, 3))
    with pytest.raises(ValueError, match="eps"):
        reparam.reparameterize(mu, mu, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="eps"):
        reparam.reparameterize(mu, mu, np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="logvar"):
        reparam.reparameterize(mu, np.zeros((2, 4)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="dz"):
        reparam.reparameterize_backward(np.zeros((2, 2, 3)), mu, np.zeros((1, 2, 3)))
    for name, args in (("k", (0, 1, 1)), ("batch", (1, -2, 1)), ("z_dim", (1, 1, 1.5))):
        with pytest.raises(ValueError, match=name):
            reparam.sample_eps(np.random.default_rng(0), *args)
