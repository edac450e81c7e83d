"""Likelihood log-probs and their gradients (float64 finite differences)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae import likelihoods as lk
from numpyvae.gradcheck import check_function, numerical_grad, rel_error

from _helpers import FAST, PASS, batch, dims, ksamp, seeds


def _draw(seed, k, b, d):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((k, b, d)), rng.standard_normal((k, b))


@FAST
@given(k=ksamp, b=batch, d=dims, seed=seeds, binary=st.booleans())
def test_bernoulli_grad_gradcheck(k, b, d, seed, binary):
    rng, logits, w = _draw(seed, k, b, d)
    logits *= 3
    x = rng.uniform(0, 1, (b, d))
    if binary:
        x = (x > 0.5).astype(float)

    def f():
        return float(np.sum(w * lk.bernoulli_log_prob(x, logits)))

    assert lk.bernoulli_log_prob(x, logits).shape == (k, b)
    rep = check_function(f, w[..., None] * lk.bernoulli_log_prob_grad(x, logits), logits)
    assert rep.max_error < PASS, str(rep)


@FAST
@given(k=ksamp, b=batch, d=dims, seed=seeds, c=st.floats(0.05, 5.0))
def test_gaussian_grad_gradcheck(k, b, d, seed, c):
    rng, mean, w = _draw(seed, k, b, d)
    x = rng.standard_normal((b, d))

    def f():
        return float(np.sum(w * lk.gaussian_log_prob(x, mean, c)))

    assert lk.gaussian_log_prob(x, mean, c).shape == (k, b)
    rep = check_function(f, w[..., None] * lk.gaussian_log_prob_grad(x, mean, c), mean)
    assert rep.max_error < PASS, str(rep)


@FAST
@given(k=ksamp, b=batch, d=dims, seed=seeds)
def test_gaussian_learned_grad_gradcheck(k, b, d, seed):
    rng, mean, w = _draw(seed, k, b, d)
    logvar = rng.uniform(-2, 2, (k, b, d))
    x = rng.standard_normal((b, d))

    def f():
        return float(np.sum(w * lk.gaussian_learned_log_prob(x, mean, logvar)))

    gm, gv = lk.gaussian_learned_log_prob_grad(x, mean, logvar)
    rep = check_function(f, w[..., None] * gm, mean, name="mean")
    rep.rows += check_function(f, w[..., None] * gv, logvar, name="logvar").rows
    assert rep.max_error < PASS, str(rep)


def test_log_prob_values_against_direct_formulas():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 5))
    logits = rng.standard_normal((2, 5))
    p = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(lk.bernoulli_log_prob(x, logits),
                               np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), -1))
    m, c = rng.standard_normal((2, 5)), 0.3
    ref = np.sum(-0.5 * np.log(2 * np.pi * c) - (x - m) ** 2 / (2 * c), -1)
    np.testing.assert_allclose(lk.gaussian_log_prob(x, m, c), ref)
    v = rng.standard_normal((2, 5))
    ref = np.sum(-0.5 * np.log(2 * np.pi * np.exp(v)) - (x - m) ** 2 / (2 * np.exp(v)), -1)
    np.testing.assert_allclose(lk.gaussian_learned_log_prob(x, m, v), ref)
    # learned variance at logvar = log c equals the fixed-variance Gaussian
    np.testing.assert_allclose(lk.gaussian_learned_log_prob(x, m, np.full_like(m, np.log(c))),
                               lk.gaussian_log_prob(x, m, c))


def test_bernoulli_stable_at_huge_logits():
    x = np.array([[1.0, 0.0, 1.0, 0.0]])
    logits = np.array([[800.0, -800.0, -800.0, 800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        v = lk.bernoulli_log_prob(x, logits)
        g = lk.bernoulli_log_prob_grad(x, logits)
    np.testing.assert_allclose(v, [-1600.0])
    np.testing.assert_allclose(g, [[0.0, 0.0, 1.0, -1.0]], atol=1e-300)
    assert np.all(lk.bernoulli_log_prob((np.random.default_rng(0).uniform(size=(3, 7)) > .5)
                                        .astype(float), np.zeros((3, 7))) <= 0)


@pytest.mark.parametrize("which", ["bernoulli_x2", "bernoulli_dropped", "gauss_no_c",
                                   "learned_logvar_x2", "learned_logvar_dropped"])
def test_likelihood_grad_mutations_are_caught(which):
    """Wrong gradients (factor 2, dropped term) are flagged by the same checks."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (3, 6))
    out = rng.standard_normal((2, 3, 6))
    v = rng.uniform(-1, 1, (2, 3, 6))
    c = 0.4
    if which.startswith("bernoulli"):
        log_prob = lk.bernoulli_log_prob
        args = (x, out)
        good = lk.bernoulli_log_prob_grad(x, out)
        bad = 2 * good if which.endswith("x2") else x - 0 * out   # dropped -sigmoid(l)
        target = out
    elif which == "gauss_no_c":
        log_prob = lk.gaussian_log_prob
        args = (x, out, c)
        good = lk.gaussian_log_prob_grad(x, out, c)
        bad = x - out                                          # forgot the 1/c
        target = out
    else:
        log_prob = lk.gaussian_learned_log_prob
        args = (x, out, v)
        good = lk.gaussian_learned_log_prob_grad(x, out, v)[1]
        d = x - out
        bad = (d * d * np.exp(-v) - 1) if which.endswith("x2") else 0.5 * d * d * np.exp(-v)
        target = v

    def f():
        return float(np.sum(log_prob(*args)))

    n = numerical_grad(f, target)
    assert rel_error(good, n) < PASS
    assert rel_error(bad, n) >= 1e-3


def test_make_likelihood_and_errors():
    assert isinstance(lk.make_likelihood("bernoulli"), lk.Bernoulli)
    g = lk.make_likelihood("gaussian", c=0.25)
    assert isinstance(g, lk.Gaussian) and g.c == 0.25
    assert lk.make_likelihood("gaussian_learned").n_outputs == 2
    with pytest.raises(ValueError, match="likelihood"):
        lk.make_likelihood("poisson")
    for bad_c in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="c"):
            lk.Gaussian(bad_c)


def test_likelihood_objects_match_functions():
    rng = np.random.default_rng(2)
    x, o, v = rng.uniform(size=(2, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    np.testing.assert_array_equal(lk.Bernoulli().log_prob(x, o), lk.bernoulli_log_prob(x, o))
    np.testing.assert_allclose(lk.Bernoulli().mean(o), 1 / (1 + np.exp(-o)))
    np.testing.assert_array_equal(lk.Gaussian(2.0).grad(x, o)[0],
                                  lk.gaussian_log_prob_grad(x, o, 2.0))
    gm, gv = lk.GaussianLearned().grad(x, o, v)
    np.testing.assert_array_equal(gv, lk.gaussian_learned_log_prob_grad(x, o, v)[1])
