"""Full-covariance Gaussian encoder (note 10, eqs. 10.5-10.8): z = mu + L eps, checked by hand."""
from __future__ import annotations

import numpy as np
import pytest
from _helpers import FAST, model_x, seeds
from hypothesis import given
from hypothesis import strategies as st

import numpyvae as nv
from numpyvae.gradcheck import check_function, check_model
from numpyvae.kl import kl_full_std, kl_full_std_grad, kl_mvn
from numpyvae.reparam import (
    reparameterize,
    reparameterize_full,
    reparameterize_full_backward,
    tril_factor,
)


def _random_q(rng, b, z):
    return (rng.standard_normal((b, z)), 0.5 * rng.standard_normal((b, z)),
            rng.standard_normal((b, z * (z - 1) // 2)))


def test_tril_factor_shape_and_diagonal():
    rng = np.random.default_rng(0)
    mu, logvar, off = _random_q(rng, 3, 4)
    L = tril_factor(logvar, off)
    assert np.all(np.triu(L, 1) == 0)
    np.testing.assert_allclose(np.diagonal(L, axis1=1, axis2=2), np.exp(0.5 * logvar))
    with pytest.raises(ValueError, match="off"):
        tril_factor(logvar, off[:, :-1])


def test_zero_off_diagonal_is_the_diagonal_posterior():
    rng = np.random.default_rng(1)
    mu, logvar, off = _random_q(rng, 3, 4)
    eps = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(reparameterize_full(mu, logvar, 0 * off, eps),
                               reparameterize(mu, logvar, eps), rtol=1e-14)


@FAST
@given(b=st.integers(1, 4), z=st.integers(1, 5), k=st.integers(1, 3), seed=seeds)
def test_reparameterize_full_backward(b, z, k, seed):
    rng = np.random.default_rng(seed)
    mu, logvar, off = _random_q(rng, b, z)
    eps = rng.standard_normal((k, b, z))
    g = rng.standard_normal((k, b, z))

    def f():
        return float(np.sum(reparameterize_full(mu, logvar, off, eps) * g))

    dmu, dlogvar, doff = reparameterize_full_backward(g, logvar, off, eps)
    for name, arr, grad in (("mu", mu, dmu), ("logvar", logvar, dlogvar), ("off", off, doff)):
        report = check_function(f, grad, arr, name)
        assert report.passed, str(report)


@FAST
@given(b=st.integers(1, 4), z=st.integers(1, 5), seed=seeds)
def test_kl_full_closed_form_and_gradient(b, z, seed):
    rng = np.random.default_rng(seed)
    mu, logvar, off = _random_q(rng, b, z)
    L = tril_factor(logvar, off)
    expected = kl_mvn(mu, L @ np.swapaxes(L, 1, 2), np.zeros(z), np.eye(z))
    np.testing.assert_allclose(kl_full_std(mu, logvar, off), expected, rtol=1e-10, atol=1e-12)
    grads = kl_full_std_grad(mu, logvar, off)
    for name, arr, grad in zip(("mu", "logvar", "off"), (mu, logvar, off), grads):
        report = check_function(lambda: float(kl_full_std(mu, logvar, off).sum()), grad, arr, name)
        assert report.passed, str(report)


def test_log_q_is_the_full_gaussian_density():
    """log q(z|x) = log N(eps) - log det L equals log N(z; mu, L L^T) computed directly."""
    rng = np.random.default_rng(2)
    vae = nv.FamilyVAE(5, 3, hidden=(4,), posterior="full", activation="tanh", seed=2)
    vae.flat_params[...] += 0.3 * rng.standard_normal(vae.flat_params.size)
    x = model_x(vae, rng, 2)
    eps = rng.standard_normal((4, 2, 3))
    t = vae.forward(x, eps=eps, objective="iwae")
    mu, L = vae.encode_full(x)
    S = L @ np.swapaxes(L, 1, 2)
    d = t.z - mu
    maha = np.einsum("kbi,bij,kbj->kb", d, np.linalg.inv(S), d)
    log_q = -0.5 * (3 * np.log(2 * np.pi) + np.linalg.slogdet(S)[1] + maha)
    log_pz = -0.5 * np.sum(np.log(2 * np.pi) + t.z ** 2, axis=-1)
    np.testing.assert_allclose(t.log_px_z + log_pz - log_q, t.log_w, rtol=1e-10)


@FAST
@given(b=st.integers(1, 4), x_dim=st.integers(1, 6), z_dim=st.integers(1, 4), k=st.integers(1, 3),
       hidden=st.sampled_from([(), (5,), (4, 3)]), objective=st.sampled_from(["elbo", "iwae"]),
       kl=st.sampled_from(["closed", "mc"]),
       likelihood=st.sampled_from(["bernoulli", "gaussian", "gaussian_learned"]), seed=seeds)
def test_full_cov_model_gradcheck(b, x_dim, z_dim, k, hidden, objective, kl, likelihood, seed):
    vae = nv.FamilyVAE(x_dim, z_dim, hidden=hidden, likelihood=likelihood, activation="tanh",
                 posterior="full", seed=seed)
    rng = np.random.default_rng(seed)
    vae.flat_params[...] += 0.3 * rng.standard_normal(vae.flat_params.size)   # off != 0
    x = model_x(vae, rng, b)
    report = check_model(vae, x, eps=rng.standard_normal((k, b, z_dim)), objective=objective,
                         kl="mc" if objective == "iwae" else kl)
    assert report.passed, str(report)


def test_full_cov_config_round_trip_and_errors():
    vae = nv.FamilyVAE(5, 3, hidden=(4,), posterior="full")
    assert "enc.off.W" in vae.params and vae.params["enc.off.W"].shape == (4, 3)
    again = nv.VAE.from_config(vae.config)
    assert again.posterior == "full" and again.flat_params.size == vae.flat_params.size
    with pytest.raises(ValueError, match="posterior"):
        nv.FamilyVAE(5, 3, posterior="banded")


def test_linear_gaussian_exact_elbo_of_the_full_encoder():
    """hidden=(), gaussian: the model is linear-Gaussian, and the exact ELBO of the encoder's
    full-covariance q (LinearGaussian.elbo with q_cov = L L^T) matches the sampled one."""
    rng = np.random.default_rng(8)
    vae = nv.FamilyVAE(4, 2, hidden=(), likelihood="gaussian", posterior="full", seed=8)
    vae.flat_params[...] += 0.3 * rng.standard_normal(vae.flat_params.size)
    x = rng.standard_normal((2, 4))
    lg = nv.LinearGaussian.from_vae(vae)
    mu, L = vae.encode_full(x)
    exact = lg.elbo(x, mu, q_cov=L @ np.swapaxes(L, 1, 2))
    sampled = vae.forward(x, eps=rng.standard_normal((200000, 2, 2)), kl="closed").elbo_per_example
    np.testing.assert_allclose(sampled, exact, atol=0.05)
