"""The linear-Gaussian model: exact evidence, posterior, ELBO identities and PPCA."""

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.theory.linear_gaussian import LinearGaussian, ppca_max_log_likelihood, ppca_ml

# numpy >= 2 renamed trapz to trapezoid; the package supports numpy >= 1.23
trapezoid = getattr(np, "trapezoid", None) or np.trapz


def _model(seed=0, D=5, Z=2, c=0.3):
    rng = np.random.default_rng(seed)
    return LinearGaussian(rng.normal(size=(D, Z)), rng.normal(size=D), c), rng


def _brute_log_normal(x, mean, cov):
    r = x - mean
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("bi,ij,bj->b", r, np.linalg.inv(cov), r)
    return -0.5 * (len(mean) * np.log(2 * np.pi) + logdet + quad)


def test_log_marginal_matches_dense_formula():
    lg, rng = _model()
    x = rng.normal(size=(20, 5)) * 2
    ref = _brute_log_normal(x, lg.b, lg.W @ lg.W.T + lg.c * np.eye(5))
    np.testing.assert_allclose(lg.log_marginal(x), ref, rtol=0, atol=1e-10)


def test_log_marginal_is_integral_of_joint_over_z_1d():
    # x_dim = z_dim = 1: p(x) = int p(z) p(x|z) dz on a fine grid (trapezoid rule).
    lg = LinearGaussian(np.array([[1.7]]), np.array([0.4]), 0.25)
    x = np.array([[-2.0], [0.3], [3.1]])
    zs = np.linspace(-12, 12, 40001)
    lj = lg.log_joint(x, np.broadcast_to(zs[:, None, None], (zs.size, 3, 1)))  # (K, B)
    integral = trapezoid(np.exp(lj), zs, axis=0)
    np.testing.assert_allclose(np.log(integral), lg.log_marginal(x), rtol=0, atol=1e-9)


def test_bayes_rule_holds_pointwise():
    lg, rng = _model(1, D=6, Z=3)
    x = lg.sample(7, rng)
    z = rng.normal(size=(4, 7, 3)) * 3
    lhs = lg.log_joint(x, z) - lg.log_posterior(z, x)
    np.testing.assert_allclose(lhs, np.broadcast_to(lg.log_marginal(x), lhs.shape), atol=1e-10)


def test_shah_eq8_log_evidence_is_elbo_plus_kl_for_any_gaussian_q():
    lg, rng = _model(2, D=6, Z=3)
    x = lg.sample(10, rng)
    q_mu = rng.normal(size=(10, 3))
    q_lv = rng.normal(size=(10, 3))
    kl = lg.kl_to_posterior(x, q_mu, q_lv)
    np.testing.assert_allclose(lg.log_marginal(x) - lg.elbo(x, q_mu, q_lv), kl, rtol=0, atol=1e-10)
    assert np.all(kl > 0)
    # full-covariance q as well
    A = rng.normal(size=(10, 3, 3))
    q_cov = A @ np.transpose(A, (0, 2, 1)) + 0.1 * np.eye(3)
    kl_full = lg.kl_to_posterior(x, q_mu, q_cov=q_cov)
    np.testing.assert_allclose(lg.log_marginal(x) - lg.elbo(x, q_mu, q_cov=q_cov), kl_full, atol=1e-10)
    assert np.all(kl_full > 0)


def test_gap_vanishes_at_exact_posterior():
    lg, rng = _model(3)
    x = lg.sample(8, rng)
    mean, cov = lg.posterior(x)
    np.testing.assert_allclose(lg.elbo(x, mean, q_cov=cov), lg.log_marginal(x), rtol=0, atol=1e-10)
    np.testing.assert_allclose(lg.kl_to_posterior(x, mean, q_cov=cov), 0.0, atol=1e-10)


def test_diagonal_q_is_exact_when_decoder_columns_are_orthogonal():
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 3)))
    lg = LinearGaussian(Q * np.array([2.0, 1.0, 0.5]), rng.normal(size=6), 0.2)
    x = lg.sample(9, rng)
    _, cov = lg.posterior(x)
    assert np.max(np.abs(cov - np.diag(np.diag(cov)))) < 1e-14
    q_mu, q_lv = lg.optimal_diagonal_q(x)
    np.testing.assert_allclose(lg.elbo(x, q_mu, q_lv), lg.log_marginal(x), rtol=0, atol=1e-10)


def test_optimal_diagonal_q_minimises_kl_but_leaves_a_gap_for_correlated_posterior():
    lg, rng = _model(5)
    x = lg.sample(4, rng)
    q_mu, q_lv = lg.optimal_diagonal_q(x)
    best = lg.kl_to_posterior(x, q_mu, q_lv)
    assert np.all(best > 1e-3)  # posterior correlation: a diagonal q cannot be exact
    for _ in range(20):
        d_mu, d_lv = 0.05 * rng.normal(size=q_mu.shape), 0.05 * rng.normal(size=q_lv.shape)
        assert np.all(lg.kl_to_posterior(x, q_mu + d_mu, q_lv + d_lv) > best)


@pytest.mark.parametrize("method", ["cholesky", "ancestral"])
def test_sample_moments(method):
    lg, rng = _model(6, D=4, Z=2, c=0.5)
    x = lg.sample(200_000, rng, method=method)
    se_mean = np.sqrt(np.diag(lg.cov) / x.shape[0])
    assert np.all(np.abs(x.mean(0) - lg.b) < 5 * se_mean)
    np.testing.assert_allclose(np.cov(x.T), lg.cov, atol=0.05 * np.max(np.abs(lg.cov)))


def test_ancestral_sample_returns_prior_z():
    lg, rng = _model(7)
    x, z = lg.sample(50_000, rng, method="ancestral", return_z=True)
    assert x.shape == (50_000, 5) and z.shape == (50_000, 2)
    assert np.all(np.abs(z.mean(0)) < 5 / np.sqrt(50_000))
    r = x - lg.b - z @ lg.W.T  # the noise: variance c in every coordinate
    np.testing.assert_allclose(r.var(0), lg.c, rtol=0.05)


@pytest.mark.parametrize("c", [None, 0.3])
def test_ppca_ml_closed_form_and_is_a_maximum(c):
    lg, rng = _model(8, D=5, Z=2, c=0.3)
    x = lg.sample(2000, rng)
    W, b, c_hat = ppca_ml(x, 2, c=c)
    best = LinearGaussian(W, b, c_hat).log_marginal(x).mean()
    assert abs(ppca_max_log_likelihood(x, 2, c=c) - best) < 1e-10
    if c is None:
        lam = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
        assert abs(c_hat - lam[2:].mean()) < 1e-12
    else:
        assert c_hat == c
    # any perturbation of (W, b[, c]) lowers the average log-likelihood
    for _ in range(20):
        dc = 0.0 if c is not None else 0.01 * rng.normal()
        other = LinearGaussian(W + 0.02 * rng.normal(size=W.shape), b + 0.02 * rng.normal(size=5),
                               c_hat + dc)
        assert other.log_marginal(x).mean() < best
    # close to the generating model's covariance
    model = LinearGaussian(W, b, c_hat)
    assert np.max(np.abs(model.cov - lg.cov)) < 0.2 * np.max(np.abs(lg.cov))


@pytest.mark.slow
def test_linear_vae_elbo_approaches_ppca_maximum_likelihood():
    """A VAE with hidden=() and a Gaussian decoder of the true c, trained by Adam on 3000
    points from a known 5-D / 2-D model: its exact ELBO (closed form, encoder q) reaches the
    PPCA maximum likelihood (c fixed at the truth) within 0.05 nats per example, and never
    exceeds it."""
    rng = np.random.default_rng(0)
    c_true = 0.1
    truth = LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5), c_true)
    x = truth.sample(3000, rng)
    ml = ppca_max_log_likelihood(x, 2, c=c_true)
    vae = nv.VAE(5, 2, hidden=(), likelihood="gaussian", c=c_true, seed=0)
    opt = nv.optim.Adam(lr=0.01)
    steps = 5000
    for s in range(steps):
        opt.lr = 0.01 * (1 - 0.95 * s / steps)
        idx = rng.choice(3000, 300, replace=False)
        vae.forward(x[idx])
        vae.backward()
        opt.step(vae.flat_params, vae.flat_grads)
    lg = LinearGaussian.from_vae(vae)
    mu, lv = vae.encode(x)
    elbo = lg.elbo(x, mu, lv).mean()
    assert elbo <= lg.log_marginal(x).mean() <= ml + 1e-9
    assert ml - elbo < 0.05, (ml, elbo)


def test_from_vae_uses_decoder_weights():
    vae = nv.VAE(4, 3, hidden=(), likelihood="gaussian", c=0.7, seed=3)
    lg = LinearGaussian.from_vae(vae)
    z = np.random.default_rng(0).normal(size=(2, 5, 3))
    np.testing.assert_allclose(lg.W @ z[0, 0] + lg.b, vae.decode(z)[0, 0], atol=1e-12)
    x = np.random.default_rng(1).normal(size=(5, 4))
    np.testing.assert_allclose(lg.log_px_given_z(x, z), vae.log_px_given_z(x, z), atol=1e-10)
    with pytest.raises(ValueError, match="hidden"):
        LinearGaussian.from_vae(nv.VAE(4, 3, hidden=(8,), likelihood="gaussian"))


def test_bad_inputs_raise_with_names():
    with pytest.raises(ValueError, match="W"):
        LinearGaussian(np.ones(3), np.ones(3), 1.0)
    with pytest.raises(ValueError, match="b"):
        LinearGaussian(np.ones((3, 2)), np.ones(2), 1.0)
    with pytest.raises(ValueError, match="c"):
        LinearGaussian(np.ones((3, 2)), np.ones(3), 0.0)
    lg, _ = _model()
    with pytest.raises(ValueError, match="x"):
        lg.log_marginal(np.ones((2, 4)))
    with pytest.raises(ValueError, match="q_mu"):
        lg.elbo(np.ones((2, 5)), np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="q_logvar"):
        lg.elbo(np.ones((2, 5)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="z_dim"):
        ppca_ml(np.ones((10, 3)), 3)
    with pytest.raises(ValueError, match="method"):
        lg.sample(3, method="gibbs")
