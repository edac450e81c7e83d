"""EM on the linear-Gaussian model (numpyvae.theory.em; derivations/03_elbo.md, (3.11)-(3.12))."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numpyvae.theory import em
from numpyvae.theory.linear_gaussian import LinearGaussian, ppca_max_log_likelihood


def _data(seed, N=300, D=5, Z=2):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, Z)) * 2
    return rng.normal(size=(N, Z)) @ W.T + 0.5 * rng.normal(size=(N, D)) + rng.normal(size=D)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), learn_c=st.booleans())
def test_marginal_likelihood_never_decreases(seed, learn_c):
    x = _data(seed)
    model, hist = em.fit_em(x, 2, n_steps=30, c=None if learn_c else 0.7, seed=seed)
    lp, bound = hist["log_px"], hist["elbo_after_m"]
    assert np.all(np.diff(lp) >= -1e-9), np.diff(lp).min()
    # the sandwich: log p_old(x) <= ELBO(q_old, theta_new) <= log p_new(x)
    assert np.all(bound[1:] >= lp[:-1] - 1e-9)
    assert np.all(bound[1:] <= lp[1:] + 1e-9)


def test_reaches_the_ppca_maximum():
    x = _data(3)
    _, hist = em.fit_em(x, 2, n_steps=1500, seed=1)
    best = ppca_max_log_likelihood(x, 2)
    assert hist["log_px"][0] < best - 1.0           # it started far away ...
    assert abs(hist["log_px"][-1] - best) < 1e-6     # ... and arrived
    _, hist_c = em.fit_em(x, 2, n_steps=1500, c=0.3, seed=1)
    assert abs(hist_c["log_px"][-1] - ppca_max_log_likelihood(x, 2, c=0.3)) < 1e-6


def test_e_step_makes_the_bound_tight():
    x = _data(5)
    rng = np.random.default_rng(0)
    model = LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5), 0.8)
    m, S = em.e_step(model, x)
    np.testing.assert_allclose(model.elbo(x, m, q_cov=S), model.log_marginal(x), atol=1e-9)


def test_m_step_maximises_the_expected_log_joint():
    # any perturbation of the M-step's (W, b, c) lowers sum_i E_q log p(x_i, z)
    x = _data(7)
    rng = np.random.default_rng(1)
    start = LinearGaussian(rng.normal(size=(5, 2)), np.zeros(5), 1.0)
    m, S = em.e_step(start, x)
    W, b, c = em.m_step(x, m, S)
    best = LinearGaussian(W, b, c).expected_log_joint(x, m, q_cov=S).sum()
    for _ in range(20):
        dW, db, dc = 1e-3 * rng.normal(size=W.shape), 1e-3 * rng.normal(size=5), 1e-3 * rng.normal()
        other = LinearGaussian(W + dW, b + db, c + dc).expected_log_joint(x, m, q_cov=S).sum()
        assert other < best


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="model"):
        em.e_step("not a model", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="S must be"):
        em.m_step(np.zeros((4, 3)), np.zeros((4, 2)), np.eye(3))
    with pytest.raises(ValueError, match="n_steps"):
        em.fit_em(_data(0), 2, n_steps=0)
