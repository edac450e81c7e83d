"""The IWAE objective (note 10, eqs. 10.1-10.4): value, stability, and hand-written backward."""
from __future__ import annotations

import numpy as np
import pytest
from _helpers import FAST, model_x, randomize_biases, seeds
from hypothesis import given
from hypothesis import strategies as st

import numpyvae as nv
from numpyvae.gradcheck import check_model

SMOOTH = ("tanh", "softplus", "sigmoid")


def _model(seed, x_dim, z_dim, hidden, likelihood, act="tanh", **kw):
    vae = nv.FamilyVAE(x_dim, z_dim, hidden=hidden, likelihood=likelihood, activation=act, seed=seed, **kw)
    randomize_biases(vae, np.random.default_rng(seed))
    return vae


@FAST
@given(b=st.integers(1, 5), x_dim=st.integers(1, 7), z_dim=st.integers(1, 4), k=st.integers(1, 5),
       hidden=st.sampled_from([(), (5,), (4, 3)]), act=st.sampled_from(SMOOTH),
       likelihood=st.sampled_from(["bernoulli", "gaussian", "gaussian_learned"]), seed=seeds)
def test_iwae_gradcheck(b, x_dim, z_dim, k, hidden, act, likelihood, seed):
    vae = _model(seed, x_dim, z_dim, hidden, likelihood, act)
    rng = np.random.default_rng(seed)
    x = model_x(vae, rng, b)
    eps = rng.standard_normal((k, b, z_dim))
    report = check_model(vae, x, eps=eps, objective="iwae")
    assert report.passed, str(report)


def test_k1_iwae_is_the_elbo_with_monte_carlo_kl():
    """K = 1: -log w = -log p(x|z) + log q - log p(z): the same loss and the same gradient
    as the plain path's ELBO with kl="mc" (eq. 10.3)."""
    rng = np.random.default_rng(3)
    vae = _model(3, 6, 3, (5,), "bernoulli")
    x = model_x(vae, rng, 4)
    eps = rng.standard_normal((1, 4, 3))
    l_elbo, g_elbo = vae.loss_and_grads(x, eps=eps, kl="mc")
    l_iwae, g_iwae = vae.loss_and_grads(x, eps=eps, objective="iwae")
    assert l_iwae == pytest.approx(l_elbo, rel=1e-12)
    for name in g_elbo:
        np.testing.assert_allclose(g_iwae[name], g_elbo[name], rtol=1e-10, atol=1e-13)


def test_iwae_bound_value_and_order():
    """-loss = log mean_k w_k per example, at least the K-sample ELBO (Jensen), and the
    same number numpyvae.iwae.log_mean_exp gives."""
    rng = np.random.default_rng(5)
    vae = _model(5, 8, 2, (6,), "bernoulli")
    x = model_x(vae, rng, 6)
    eps = rng.standard_normal((7, 6, 2))
    t = vae.forward(x, eps=eps, objective="iwae")
    bound = nv.log_mean_exp(t.log_w, axis=0)
    assert -t.loss == pytest.approx(bound.mean(), rel=1e-12)
    assert np.all(bound >= t.log_w.mean(axis=0) - 1e-12)
    assert t.elbo == pytest.approx(t.log_w.mean(), rel=1e-12)


def test_iwae_is_stable_for_huge_log_weights():
    """Weights near exp(-1e5) would underflow a naive mean of exp; log-sum-exp does not."""
    rng = np.random.default_rng(6)
    vae = nv.FamilyVAE(4, 2, hidden=(), likelihood="gaussian", c=1e-4, seed=6)
    x = 30.0 + rng.standard_normal((3, 4))
    eps = rng.standard_normal((5, 3, 2))
    t = vae.forward(x, eps=eps, objective="iwae")
    assert np.all(t.log_w < -1e5)
    assert np.isfinite(t.loss)
    vae.backward()
    assert np.all(np.isfinite(vae.flat_grads))
    m = t.log_w.max(axis=0)
    expected = -(m + np.log(np.exp(t.log_w - m).mean(axis=0)))
    assert t.loss == pytest.approx(expected.mean(), rel=1e-12)


def test_normalized_weights_scale_each_sample():
    """Every decoder gradient of the IWAE loss is the w~-weighted sum of the single-sample
    losses' decoder gradients (eq. 10.2): sample k's pathwise gradient, scaled by w~_k."""
    rng = np.random.default_rng(7)
    vae = _model(7, 5, 3, (4,), "bernoulli")
    x = model_x(vae, rng, 1)
    eps = 1.5 * rng.standard_normal((4, 1, 3))
    t = vae.forward(x, eps=eps, objective="iwae")
    vae.backward()
    dec = [n for n in vae.grads if n.startswith("dec.")]
    g_iwae = {n: vae.grads[n].copy() for n in dec}
    w = np.exp(t.log_w[:, 0] - t.log_w[:, 0].max())
    w /= w.sum()
    assert w.max() < 0.99                                # no single sample dominates here
    expected = {n: 0 * g_iwae[n] for n in dec}
    for k in range(4):
        vae.forward(x, eps=eps[k:k + 1], objective="iwae")
        vae.backward()
        for n in dec:
            expected[n] += w[k] * vae.grads[n]
    for n in dec:
        np.testing.assert_allclose(g_iwae[n], expected[n], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_negligible_weights_are_zero_not_subnormal(dtype):
    """Log weights 90-100 nats below the best give float32 weights in the subnormal range; they
    come back as zeros, and the rest of the softmax is unchanged to rounding."""
    log_w = np.array([[0.0, -3.0], [-1.0, -95.0], [-90.0, -200.0], [-100.0, -3.5]], dtype=dtype)
    d = nv.iwae.iwae_bound_backward(np.ones(2, dtype=dtype), log_w)
    tiny = np.finfo(dtype).tiny
    assert d.dtype == dtype and not np.any((d != 0) & (np.abs(d) < tiny))
    exact = np.exp(log_w.astype(np.float64) - log_w.max(axis=0))
    exact /= exact.sum(axis=0)
    np.testing.assert_allclose(d, exact, rtol=1e-6 if dtype == np.float32 else 1e-14,
                               atol=float(np.finfo(dtype).eps) ** 2)
    keep = exact >= float(np.finfo(dtype).eps) ** 2
    assert np.all(d[keep] > 0) and np.all(d[~keep] == 0)
    if dtype == np.float32:
        assert not keep.all()          # the float32 case does drop weights


def test_iwae_argument_errors():
    vae = nv.FamilyVAE(4, 2, hidden=(3,))
    x = np.full((2, 4), 0.5)
    with pytest.raises(ValueError, match="objective"):
        vae.forward(x, objective="vimco")
    with pytest.raises(ValueError, match="beta"):
        vae.forward(x, objective="iwae", beta=0.5)
    with pytest.raises(ValueError, match="q="):
        vae.forward(x, objective="iwae", q=(np.zeros((2, 2)), np.zeros((2, 2))))


def test_the_model_records_its_training_objective():
    """FamilyVAE(..., objective="iwae") makes forward's default the IWAE; config keeps it, so a
    model rebuilt from a checkpoint's record trains the same objective."""
    rng = np.random.default_rng(8)
    vae = nv.FamilyVAE(5, 2, hidden=(3,), objective="iwae", seed=8)
    x = model_x(vae, rng, 2)
    eps = rng.standard_normal((3, 2, 2))
    assert vae.forward(x, eps=eps).loss == vae.forward(x, eps=eps, objective="iwae").loss
    assert vae.forward(x, eps=eps).loss != vae.forward(x, eps=eps, objective="elbo").loss
    again = nv.VAE.from_config(vae.config)
    assert type(again) is nv.FamilyVAE and again.objective == "iwae"
    assert isinstance(nv.VAE.from_config(nv.VQVAE(5, hidden=(3,)).config), nv.VQVAE)
    with pytest.raises(ValueError, match="objective"):
        nv.FamilyVAE(5, 2, objective="rws")
