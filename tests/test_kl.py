"""KL divergences: gradients, Monte Carlo pathwise gradients, and properties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numpyvae import kl, reparam
from numpyvae.gradcheck import check_function, numerical_grad, rel_error

from _helpers import FAST, PASS, batch, dims, ksamp, seeds

bounded = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def _draw(seed, b, z, k=None):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((b, z))
    logvar = rng.uniform(-2, 2, (b, z))
    if k is None:
        return rng, mu, logvar
    return rng, mu, logvar, rng.standard_normal((k, b, z))


@FAST
@given(b=batch, z=dims, seed=seeds)
def test_kl_normal_std_grad_gradcheck(b, z, seed):
    rng, mu, logvar = _draw(seed, b, z)
    w = rng.standard_normal(b)                     # weight each example differently

    def f():
        return float(np.sum(w * kl.kl_normal_std(mu, logvar)))

    gmu, glv = kl.kl_normal_std_grad(mu, logvar)
    rep = check_function(f, w[:, None] * gmu, mu, name="mu")
    rep.rows += check_function(f, w[:, None] * glv, logvar, name="logvar").rows
    assert rep.max_error < PASS, str(rep)


@FAST
@given(k=ksamp, b=batch, z=dims, seed=seeds)
def test_kl_monte_carlo_partials_gradcheck(k, b, z, seed):
    """dz (at fixed mu, logvar) and dmu, dlogvar (at fixed z) of log q(z) - log p(z)."""
    rng, mu, logvar, eps = _draw(seed, b, z, k)
    zs = reparam.reparameterize(mu, logvar, eps)
    w = rng.standard_normal((k, b))

    def f():
        return float(np.sum(w * kl.kl_monte_carlo(zs, mu, logvar)[0]))

    val, dz, dmu, dlv = kl.kl_monte_carlo(zs, mu, logvar)
    assert val.shape == (k, b) and dz.shape == dmu.shape == dlv.shape == (k, b, z)
    W = w[..., None]
    rep = check_function(f, W * dz, zs, name="z")
    rep.rows += check_function(f, (W * dmu).sum(0), mu, name="mu").rows
    rep.rows += check_function(f, (W * dlv).sum(0), logvar, name="logvar").rows
    assert rep.max_error < PASS, str(rep)


@FAST
@given(k=ksamp, b=batch, z=dims, seed=seeds)
def test_kl_monte_carlo_total_pathwise_gradient(k, b, z, seed):
    """d/d(mu, logvar) of the MC KL with eps fixed = dz through reparameterize_backward
    plus the fixed-z partials summed over K."""
    rng, mu, logvar, eps = _draw(seed, b, z, k)
    w = rng.standard_normal((k, b))

    def f():
        zs = reparam.reparameterize(mu, logvar, eps)
        return float(np.sum(w * kl.kl_monte_carlo(zs, mu, logvar)[0]))

    zs = reparam.reparameterize(mu, logvar, eps)
    _, dz, dmu, dlv = kl.kl_monte_carlo(zs, mu, logvar)
    W = w[..., None]
    pmu, plv = reparam.reparameterize_backward(W * dz, logvar, eps)
    tmu, tlv = pmu + (W * dmu).sum(0), plv + (W * dlv).sum(0)
    rep = check_function(f, tmu, mu, name="mu")
    rep.rows += check_function(f, tlv, logvar, name="logvar").rows
    assert rep.max_error < PASS, str(rep)
    # the path term alone (or the partials alone) is NOT the total gradient
    assert rel_error(pmu, numerical_grad(f, mu)) >= 1e-3 or np.allclose(dmu, 0)


def test_kl_grad_mutations_are_caught():
    _, mu, logvar = _draw(0, 3, 4)

    def f():
        return float(np.sum(kl.kl_normal_std(mu, logvar)))

    n_lv = numerical_grad(f, logvar)
    n_mu = numerical_grad(f, mu)
    assert rel_error(2 * mu, n_mu) >= 1e-3                     # factor 2
    assert rel_error(np.exp(logvar) - 1, n_lv) >= 1e-3         # factor 2
    assert rel_error(0.5 * np.exp(logvar), n_lv) >= 1e-3       # dropped the -1/2
    assert rel_error(0.5 * (np.exp(logvar) - 1), n_lv) < PASS  # and the right one passes


@given(mu=hnp.arrays(np.float64, st.tuples(batch, dims), elements=bounded),
       logvar=hnp.arrays(np.float64, st.tuples(batch, dims), elements=bounded))
@FAST
def test_kl_nonnegative(mu, logvar):
    """KL >= 0 exactly, including tiny logvar where exp(lv) - lv - 1 suffers cancellation."""
    if mu.shape != logvar.shape:
        logvar = np.resize(logvar, mu.shape)
    v = kl.kl_normal_std(mu, logvar)
    assert v.shape == mu.shape[:1]
    assert np.all(v >= 0), (v, mu, logvar)


def test_kl_nonnegative_small_logvar():
    """exp(lv) - lv - 1 for |lv| ~ 1e-8 cancels catastrophically; the KL must stay >= 0."""
    lv = np.array([[1e-8], [-1e-8], [3e-9], [1e-7]])
    v = kl.kl_normal_std(np.zeros_like(lv), lv)
    assert np.all(v >= 0), v


def test_kl_zero_exactly_at_standard_normal():
    assert np.all(kl.kl_normal_std(np.zeros((3, 5)), np.zeros((3, 5))) == 0.0)
    assert kl.kl_normal_std(np.array([0.1]), np.array([0.0])) > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_closed_form_equals_mean_of_monte_carlo(seed):
    rng, mu, logvar = _draw(seed, 3, 4)
    n = 10 ** 5
    eps = rng.standard_normal((n, 3, 4))
    mc = kl.kl_monte_carlo(reparam.reparameterize(mu, logvar, eps), mu, logvar)[0]  # (n, B)
    se = mc.std(0, ddof=1) / np.sqrt(n)
    closed = kl.kl_normal_std(mu, logvar)
    assert np.all(np.abs(mc.mean(0) - closed) < 4 * se), (mc.mean(0), closed, se)


@FAST
@given(b=batch, z=dims, seed=seeds)
def test_kl_normal_normal_against_std_normal(b, z, seed):
    _, mu, logvar = _draw(seed, b, z)
    np.testing.assert_allclose(kl.kl_normal_normal(mu, logvar, np.zeros_like(mu),
                                                   np.zeros_like(mu)),
                               kl.kl_normal_std(mu, logvar), rtol=1e-12, atol=1e-12)


@FAST
@given(z=dims, seed=seeds)
def test_kl_mvn_diagonal_equals_kl_normal_normal(z, seed):
    rng = np.random.default_rng(seed)
    mq, mp = rng.standard_normal(z), rng.standard_normal(z)
    lq, lp = rng.uniform(-2, 2, z), rng.uniform(-2, 2, z)
    full = kl.kl_mvn(mq, np.diag(np.exp(lq)), mp, np.diag(np.exp(lp)))
    diag = kl.kl_normal_normal(mq, lq, mp, lp)
    assert full == pytest.approx(float(diag), rel=1e-10, abs=1e-12)


@FAST
@given(z=dims, seed=seeds)
def test_kl_mvn_self_is_zero_and_positive_otherwise(z, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((z, z))
    S = A @ A.T + z * np.eye(z)
    m = rng.standard_normal(z)
    assert abs(kl.kl_mvn(m, S, m, S)) < 1e-10
    assert kl.kl_mvn(m, S, m + 1.0, S) > 0
    assert kl.kl_mvn(m, S, m, 2 * S) > 0


def test_kl_mvn_shape_error_names_arguments():
    with pytest.raises(ValueError, match="cov_q"):
        kl.kl_mvn(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


def test_log_densities():
    z = np.array([[0.3, -1.2]])
    mu, lv = np.array([[0.1, 0.4]]), np.array([[0.5, -0.3]])
    var = np.exp(lv)
    ref = np.sum(-0.5 * np.log(2 * np.pi * var) - (z - mu) ** 2 / (2 * var), -1)
    np.testing.assert_allclose(kl.log_normal_diag(z, mu, lv), ref)
    np.testing.assert_allclose(kl.log_std_normal(z),
                               kl.log_normal_diag(z, np.zeros_like(z), np.zeros_like(z)))
