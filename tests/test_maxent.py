"""Maximum entropy at fixed variance: closed forms versus Monte Carlo, Gaussian is largest."""

import numpy as np
import pytest

from numpyvae.theory import maxent

# numpy >= 2 renamed trapz to trapezoid; the package supports numpy >= 1.23
trapezoid = getattr(np, "trapezoid", None) or np.trapz


@pytest.mark.parametrize("var", [0.3, 1.0, 4.0])
def test_closed_forms_match_monte_carlo(var):
    h = maxent.entropies_at_variance(var, n_mc=200_000, seed=1)
    for i, name in enumerate(maxent.DISTRIBUTIONS):
        mc, se = maxent.entropy_monte_carlo(name, var, n=200_000, rng=100 + i)
        if name == "uniform":  # -log p is constant on the support: no Monte Carlo spread
            assert se < 1e-12 and mc == pytest.approx(h[name], abs=1e-12)
        else:
            assert abs(mc - h[name]) < 4 * se, (name, mc, h[name], se)


@pytest.mark.parametrize("var", [0.3, 1.0, 4.0])
def test_samplers_and_densities_have_the_stated_variance(var):
    for i, name in enumerate(maxent.DISTRIBUTIONS):
        x = maxent.sample_at_variance(name, 400_000, var, rng=i)
        # standard error of a sample variance: sqrt((m4 - var^2) / n)
        se = np.sqrt((np.mean(x**4) - var**2) / x.size)
        assert abs(x.var() - var) < 4 * se, name
        # the log density integrates to 1 and has variance var (fine grid)
        grid = np.linspace(-12 * np.sqrt(var), 12 * np.sqrt(var), 400_001)
        p = np.exp(maxent.log_density_at_variance(name, grid, var))
        assert trapezoid(p, grid) == pytest.approx(1.0, abs=2e-4)
        assert trapezoid(p * grid**2, grid) == pytest.approx(var, rel=2e-4)


def test_gaussian_has_the_largest_entropy():
    for var in (0.1, 1.0, 10.0):
        h, se = maxent.entropies_at_variance(var, seed=0, return_stderr=True)
        others = [k for k in h if k != "gaussian"]
        for k in others:
            assert h["gaussian"] > h[k] + 4 * se[k], (var, k)
    # the ordering is independent of the variance (every entropy shifts by 0.5 log var)
    h1, h4 = maxent.entropies_at_variance(1.0), maxent.entropies_at_variance(4.0)
    for k in ("gaussian", "laplace", "uniform", "logistic"):
        assert h4[k] - h1[k] == pytest.approx(0.5 * np.log(4.0), abs=1e-12)


def test_gaussian_entropy_formula_and_errors():
    assert maxent.gaussian_entropy(1.0) == pytest.approx(0.5 * np.log(2 * np.pi * np.e))
    np.testing.assert_allclose(maxent.gaussian_entropy(np.array([1.0, np.e**2])),
                               0.5 * np.log(2 * np.pi * np.e) + np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="var"):
        maxent.gaussian_entropy(-1.0)
    with pytest.raises(ValueError, match="name"):
        maxent.log_density_at_variance("cauchy", 0.0)
    with pytest.raises(ValueError, match="separation"):
        maxent.entropies_at_variance(1.0, separation=1.0)
