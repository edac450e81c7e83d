"""Numerical demonstrations of the mistakes in the source documents (derivations/13_errata.md).

Each test shows the correct statement holds and the document's version does not.
"""

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.theory.linear_gaussian import LinearGaussian

# numpy >= 2 renamed trapz to trapezoid; the package supports numpy >= 1.23
trapezoid = getattr(np, "trapezoid", None) or np.trapz

LOG_2PI = np.log(2 * np.pi)


def _lg(seed=0, D=4, Z=2, c=0.4):
    rng = np.random.default_rng(seed)
    return LinearGaussian(rng.normal(size=(D, Z)), rng.normal(size=D), c), rng


def test_gibbs_kl_is_nonnegative():
    """Shah, after Eq. (8), writes KL <= 0; Gibbs' inequality says KL >= 0 (0 iff equal)."""
    rng = np.random.default_rng(0)
    # discrete distributions
    p = rng.dirichlet(np.ones(6), size=1000)
    q = rng.dirichlet(np.ones(6), size=1000)
    kl_discrete = np.sum(q * (np.log(q) - np.log(p)), axis=1)
    assert np.all(kl_discrete > 0)
    assert np.allclose(np.sum(q * (np.log(q) - np.log(q)), axis=1), 0.0)
    # Gaussians, with the package's closed forms
    mu_q, mu_p = rng.normal(size=(500, 3)), rng.normal(size=(500, 3))
    lv_q, lv_p = rng.normal(size=(500, 3)), rng.normal(size=(500, 3))
    assert np.all(nv.kl.kl_normal_normal(mu_q, lv_q, mu_p, lv_p) > 0)
    np.testing.assert_allclose(nv.kl.kl_normal_normal(mu_q, lv_q, mu_q, lv_q), 0.0, atol=1e-12)
    A = rng.normal(size=(500, 3, 3))
    S = A @ np.transpose(A, (0, 2, 1)) + 0.1 * np.eye(3)
    assert np.all(nv.kl.kl_mvn(mu_q, S, mu_p, np.eye(3)) > 0)
    # in Shah's Eq. (8): log p(x) - ELBO(q) = KL(q || p(z|x)) >= 0, so the ELBO is a *lower* bound
    lg, rng = _lg()
    x = lg.sample(200, rng)
    gap = lg.log_marginal(x) - lg.elbo(x, rng.normal(size=(200, 2)), rng.normal(size=(200, 2)))
    assert np.all(gap > 0)


def test_shah_chain_bracketing():
    """E_q[log p(z, x)] - log p(x) = E_q[log p(z | x)]; Shah's E_q[log p(z,x) / log p(x)] is another number."""
    lg, rng = _lg(1)
    x = lg.sample(5, rng)
    q_mu, q_lv = rng.normal(size=(5, 2)), rng.normal(size=(5, 2)) - 1.0
    lhs = lg.expected_log_joint(x, q_mu, q_lv) - lg.log_marginal(x)
    # closed form E_q[log N(z; m, C)] for q = N(q_mu, diag s2) and the exact posterior N(m, C)
    m, C = lg.posterior(x)
    P = np.linalg.inv(C)
    d = q_mu - m
    e_log_post = -0.5 * (2 * LOG_2PI + np.linalg.slogdet(C)[1] + np.exp(q_lv) @ np.diag(P)
                         + np.einsum("bi,ij,bj->b", d, P, d))
    np.testing.assert_allclose(lhs, e_log_post, rtol=0, atol=1e-10)
    # Monte Carlo of the mis-bracketed ratio E_q[log p(z, x) / log p(x)]
    K = 200_000
    z = q_mu + np.exp(0.5 * q_lv) * rng.standard_normal((K, 5, 2))
    ratio = lg.log_joint(x, z) / lg.log_marginal(x)
    se = ratio.std(axis=0, ddof=1) / np.sqrt(K)
    # a ratio of logs is dimensionless and positive here (both logs are negative) ...
    assert np.all(ratio.mean(0) > 0) and np.all(e_log_post < 0)
    # ... and far (hundreds of standard errors) from the correct value
    assert np.all(np.abs(ratio.mean(0) - e_log_post) > 100 * se)
    # the correct expression, by the same Monte Carlo, agrees within its error
    diff = lg.log_joint(x, z) - lg.log_marginal(x)
    se_d = diff.std(axis=0, ddof=1) / np.sqrt(K)
    assert np.all(np.abs(diff.mean(0) - e_log_post) < 4.5 * se_d)


@pytest.mark.slow
def test_liao_kl_sign():
    """1/2 sum(mu^2 + s^2 - log s^2 - 1) is +KL(q || N(0, I)), not -KL."""
    rng = np.random.default_rng(2)
    mu, lv = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    expr = 0.5 * np.sum(mu**2 + np.exp(lv) - lv - 1, axis=1)
    assert np.all(expr >= 0)
    assert np.all(-expr <= 0)  # the slide's "-KL" would be this, a non-positive number
    # Monte Carlo KL = E_q[log q(z) - log p(z)] agrees with +expr
    K = 100_000
    eps = rng.standard_normal((K, 50, 3))
    z = nv.reparam.reparameterize(mu, lv, eps)
    mc_terms = nv.kl.log_normal_diag(z, mu, lv) - nv.kl.log_std_normal(z)
    se = mc_terms.std(axis=0, ddof=1) / np.sqrt(K)
    assert np.all(np.abs(mc_terms.mean(0) - expr) < 4.5 * se)
    assert np.all(np.abs(mc_terms.mean(0) + expr) > 10 * se)  # -expr is not the KL
    np.testing.assert_allclose(nv.kl.kl_normal_std(mu, lv), expr, atol=1e-12)


def test_liao_decoder_density_argument():
    """p(x|z) must be a density over x: N(x; mu(z), s^2) integrates to 1 in x; the slide's
    N(z; mu(z), s^2) does not depend on x at all, so its integral over x is not 1."""
    vae = nv.VAE(1, 1, hidden=(8,), likelihood="gaussian", activation="tanh", c=0.3, seed=0)
    grid = np.linspace(-30, 30, 200_001)
    for z0 in (-1.5, 0.0, 0.7, 2.0):
        z = np.full((1, grid.size, 1), z0)
        dens = np.exp(vae.log_px_given_z(grid[:, None], z)[0])  # N(x; mu(z0), c) over x
        assert abs(trapezoid(dens, grid) - 1.0) < 1e-9
        mean_z = vae.decode(np.array([[z0]]))[0, 0]
        wrong = np.exp(-0.5 * (LOG_2PI + np.log(0.3)) - 0.5 * (z0 - mean_z) ** 2 / 0.3)
        # as a function of x it is a constant, so its integral over [-L, L] is 2 L times it:
        # it depends on L and cannot be 1 for every range, unlike a density in x
        for L in (5.0, 30.0):
            g = np.linspace(-L, L, 1001)
            assert trapezoid(np.full_like(g, wrong), g) == pytest.approx(2 * L * wrong, rel=1e-12)
        assert abs(10 * wrong - 60 * wrong) > 1e-3


def test_liao_maxent_functional_derivative():
    """The mean constraint's functional derivative is lambda_2 * x (not lambda_2), making
    log p quadratic in x at the optimum: true for the Gaussian, false for e.g. the Laplace."""
    from numpyvae.theory import maxent

    x = np.linspace(-4, 4, 801)
    dx = x[1] - x[0]
    p = np.exp(maxent.log_density_at_variance("laplace", x, 1.0))
    # numerical functional derivative of M[p] = int x p(x) dx at each grid point
    h = 1e-6
    deriv = np.empty_like(x)
    for i in (0, 200, 400, 600, 800):
        pp = p.copy()
        pp[i] += h
        deriv[i] = (np.sum(x * pp) - np.sum(x * p)) * dx / (h * dx)
    idx = [0, 200, 400, 600, 800]
    np.testing.assert_allclose(deriv[idx], x[idx], atol=1e-6)  # it is x, which varies
    assert np.ptp(deriv[idx]) > 7  # not a constant lambda_2

    # stationarity -log p - 1 + l1 + l2 x + l3 (x - mu)^2 = 0: log p must be quadratic
    design = np.stack([np.ones_like(x), x, x**2], axis=1)

    def quad_residual(logp):
        coef, *_ = np.linalg.lstsq(design, logp, rcond=None)
        return np.max(np.abs(design @ coef - logp))

    assert quad_residual(maxent.log_density_at_variance("gaussian", x, 1.0)) < 1e-10
    for other in ("laplace", "logistic", "mixture"):
        assert quad_residual(maxent.log_density_at_variance(other, x, 1.0)) > 0.05, other
    # with the slide's multipliers (mu = 1.3, sigma^2 = 2): l1 = 1 - log(sigma sqrt(2 pi)),
    # l2 = 0, l3 = -1 / (2 sigma^2) the Gaussian satisfies the corrected condition exactly
    mu, s2 = 1.3, 2.0
    logp = -0.5 * (LOG_2PI + np.log(s2)) - 0.5 * (x - mu) ** 2 / s2
    l1, l2, l3 = 1 - 0.5 * np.log(2 * np.pi * s2), 0.0, -1 / (2 * s2)
    np.testing.assert_allclose(-logp - 1 + l1 + l2 * x + l3 * (x - mu) ** 2, 0.0, atol=1e-12)


def test_prabhu_joint_notation():
    """The joint is p(x, z) = p(z) p(x | z); integrating out z gives p(x)."""
    lg = LinearGaussian(np.array([[1.2, -0.4], [0.3, 0.9]]), np.array([0.5, -1.0]), 0.35)
    x = np.array([[0.2, -0.7], [2.0, 1.0], [-1.5, 0.4]])
    g = np.linspace(-9, 9, 601)
    Z1, Z2 = np.meshgrid(g, g, indexing="ij")
    z = np.stack([Z1.ravel(), Z2.ravel()], axis=-1)  # (G, 2)
    zk = np.broadcast_to(z[:, None, :], (z.shape[0], 3, 2))
    joint = np.exp(lg.log_joint(x, zk)).reshape(601, 601, 3)
    integral = trapezoid(trapezoid(joint, g, axis=1), g, axis=0)
    np.testing.assert_allclose(np.log(integral), lg.log_marginal(x), atol=1e-8)
    # and the joint factorises as p(z) p(x|z) = p(x) p(z|x)
    lj = lg.log_joint(x, zk[:50])
    np.testing.assert_allclose(lj, lg.log_marginal(x) + lg.log_posterior(zk[:50], x), atol=1e-10)


def test_lecture_sampling_average():
    """p(x) ~ (1/S) sum_s p(x | z_s), z_s ~ p(z); averaging p(x, z_s) is off by the factor p(z_s)."""
    lg, rng = _lg(3, D=3, Z=2, c=0.8)
    x = lg.sample(6, rng)
    S = 400_000
    z = np.broadcast_to(rng.standard_normal((S, 1, 2)), (S, 6, 2))
    lik = np.exp(lg.log_px_given_z(x, z))  # p(x | z_s)
    est = lik.mean(0)
    se = lik.std(0, ddof=1) / np.sqrt(S)
    exact = np.exp(lg.log_marginal(x))
    assert np.all(np.abs(est - exact) < 4.5 * se)
    joint = np.exp(lg.log_joint(x, z))  # p(x, z_s) = p(z_s) p(x | z_s)
    wrong = joint.mean(0)
    se_w = joint.std(0, ddof=1) / np.sqrt(S)
    assert np.all(np.abs(wrong - exact) > 20 * (se + se_w))
    # p(z) <= (2 pi)^{-Z/2} makes the wrong average systematically smaller
    assert np.all(wrong < exact / (2 * np.pi) + 4.5 * se_w)


def _gaussian_q(rng, B, Z):
    """A random full-covariance Gaussian q per call: mean (B, Z), shared cov (Z, Z)."""
    A = rng.normal(size=(Z, Z))
    return rng.normal(size=(B, Z)), A @ A.T + 0.2 * np.eye(Z)


def test_shah_log_evidence_sign():
    """Shah's chain before Eq. (7) ends with '- log p(x)'; KL(q || p(z|x)) needs '+ log p(x)'."""
    lg, rng = _lg(seed=3)
    x = lg.sample(5, rng)
    q_mu, q_cov = _gaussian_q(rng, 5, 2)
    # E_q log q for a Gaussian is minus its entropy
    entropy = 0.5 * (2 * (1 + LOG_2PI) + np.linalg.slogdet(q_cov)[1])
    e_log_joint = lg.expected_log_joint(x, q_mu, q_cov=q_cov)
    log_px = lg.log_marginal(x)
    post_mu, post_cov = lg.posterior(x)
    kl = nv.kl.kl_mvn(q_mu, q_cov, post_mu, post_cov)
    correct = -entropy - e_log_joint + log_px
    shah = -entropy - e_log_joint - log_px
    np.testing.assert_allclose(correct, kl, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(shah - kl, -2 * log_px, rtol=1e-10)
    assert np.all(np.abs(shah - kl) > 1.0)


def test_liao_prior_is_density():
    """Liao writes p(z) = log N(z; 0, I); the prior is N(z; 0, I) itself."""
    z = np.linspace(-12, 12, 20001)[:, None]
    log_n = nv.kl.log_std_normal(z)
    assert abs(trapezoid(np.exp(log_n), z[:, 0]) - 1) < 1e-8
    # the printed 'density' is negative wherever |z| is not tiny, so it is no density
    assert np.all(log_n < 0)
    assert trapezoid(log_n, z[:, 0]) < -100


def test_liao_encoder_targets_posterior():
    """Liao's last slide says p(x|z) ~ q(z|x); training makes q(z|x) ~ p(z|x)."""
    lg, rng = _lg(seed=4)
    x = lg.sample(6, rng)
    q_mu, q_cov = _gaussian_q(rng, 6, 2)
    post_mu, post_cov = lg.posterior(x)
    gap = lg.log_marginal(x) - lg.elbo(x, q_mu, q_cov=q_cov)
    np.testing.assert_allclose(gap, nv.kl.kl_mvn(q_mu, q_cov, post_mu, post_cov), rtol=1e-9)
    assert np.all(gap > 0)
    # the gap - what training lowers - vanishes exactly when q is the posterior
    np.testing.assert_allclose(lg.log_marginal(x) - lg.elbo(x, post_mu, q_cov=post_cov), 0,
                               atol=1e-10)


def test_shah_eq9_dropped_constant():
    """Shah's Eq. (9) keeps -||x - f(z)||^2 / 2c and drops -D/2 log(2 pi c)."""
    rng = np.random.default_rng(5)
    D, c = 6, 0.3
    vae = nv.VAE(D, 2, hidden=(5,), likelihood="gaussian", c=c, activation="tanh", seed=1)
    x = rng.normal(size=(4, D))
    z = rng.normal(size=(3, 4, 2))
    mean = vae.decode(z)
    shah = -np.sum((x - mean) ** 2, axis=-1) / (2 * c)
    logp = vae.log_px_given_z(x, z)
    np.testing.assert_allclose(logp - shah, -0.5 * D * np.log(2 * np.pi * c), rtol=1e-12)
    # with the constant the density integrates to one (1-D check over x)
    xs = np.linspace(-8, 8, 40001)
    dens = np.exp(nv.likelihoods.gaussian_log_prob(xs[:, None], np.zeros((1, 1)), c))
    assert abs(trapezoid(dens, xs) - 1) < 1e-8


# ---------------------------------------------------------------------------------------------
# E13-E17: mistakes the seeds README does not list (derivations/13_errata.md)


def test_lecture_kl_term_needs_only_the_encoder():
    """Lecture notes: the KL term 'requires mu_phi, mu_theta, Sigma_phi, Sigma_theta'; it uses phi only."""
    rng = np.random.default_rng(0)
    vae = nv.VAE(x_dim=8, z_dim=3, hidden=(6,), likelihood="gaussian_learned", seed=0, dtype=np.float64)
    x = rng.normal(size=(5, 8))
    eps = rng.normal(size=(2, 5, 3))
    base = vae.forward(x, eps=eps, k=2)
    dec, enc = vae.copy(), vae.copy()
    for name in dec.params:
        if name.startswith("dec."):
            dec.params[name][...] += rng.normal(size=dec.params[name].shape)
    for name in enc.params:
        if name.startswith("enc."):
            enc.params[name][...] += 0.1 * rng.normal(size=enc.params[name].shape)
    moved_dec, moved_enc = dec.forward(x, eps=eps, k=2), enc.forward(x, eps=eps, k=2)
    # the decoder (mu_theta, Sigma_theta) changes the reconstruction term but not the KL ...
    assert not np.allclose(moved_dec.recon, base.recon)
    np.testing.assert_array_equal(moved_dec.kl, base.kl)
    # ... which moves only with the encoder
    assert not np.allclose(moved_enc.kl, base.kl)


def test_lecture_pca_autoencoder_needs_centred_data():
    """Lecture notes: min ||x - W W^T x||^2 finds the top eigenvectors of cov(x); true only for centred x."""
    rng = np.random.default_rng(1)
    # most variance along the second axis, but a large mean along the first
    x = rng.normal(size=(2000, 2)) * np.array([0.5, 1.5]) + np.array([4.0, 0.0])

    def cost(w, data):
        w = w / np.linalg.norm(w)
        return np.mean(np.sum((data - np.outer(data @ w, w)) ** 2, axis=1))

    w_cov = np.linalg.eigh(np.cov(x.T))[1][:, -1]          # top eigenvector of cov(x): ~ (0, 1)
    w_best = np.linalg.eigh(x.T @ x)[1][:, -1]              # what the uncentred objective picks: ~ (1, 0)
    assert abs(w_cov[1]) > 0.99 and abs(w_best[0]) > 0.99
    assert cost(w_cov, x) > 3 * cost(w_best, x)             # the cov(x) direction is far from optimal
    xc = x - x.mean(0)                                       # centred, the claim holds
    assert cost(w_cov, xc) <= cost(w_best, xc)
    np.testing.assert_allclose(abs(np.linalg.eigh(xc.T @ xc)[1][:, -1] @ w_cov), 1.0, atol=1e-12)


def test_liao_unsquared_norm_is_not_pca():
    """Liao's 'PCA vs Autoencoder' loss ||input - output||_2 (unsquared) is not PCA's objective on a data set."""
    rng = np.random.default_rng(2)
    inliers = np.column_stack([rng.normal(scale=3.0, size=200), rng.normal(scale=0.2, size=200)])
    outliers = np.column_stack([rng.normal(scale=0.5, size=12), rng.choice([-25.0, 25.0], size=12)])
    x = np.vstack([inliers, outliers])
    x = x - x.mean(0)
    angles = np.deg2rad(np.arange(0, 180, 0.1))
    W = np.stack([np.cos(angles), np.sin(angles)], axis=1)          # (A, 2) unit directions
    resid = np.linalg.norm(x[None] - (x @ W.T).T[:, :, None] * W[:, None, :], axis=2)   # (A, N)
    best_sq = np.rad2deg(angles[np.argmin((resid ** 2).sum(1))])
    best_abs = np.rad2deg(angles[np.argmin(resid.sum(1))])
    w_pca = np.linalg.eigh(x.T @ x)[1][:, -1]
    pca_deg = np.rad2deg(np.arctan2(w_pca[1], w_pca[0])) % 180
    assert abs(best_sq - pca_deg) < 0.2                     # squared loss = PCA
    gap = abs(best_abs - best_sq)
    assert min(gap, 180 - gap) > 45                          # unsquared loss: another direction


def test_liao_sum_of_log_likelihoods():
    """Liao: 'a sum over the marginal likelihoods'; it is a sum of LOG-likelihoods, with another maximiser."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-3, 1, size=70), rng.normal(3, 1, size=30)])
    theta = np.linspace(-6, 6, 12001)
    logp = -0.5 * (x[None] - theta[:, None]) ** 2 - 0.5 * LOG_2PI   # (T, N)
    # the log of the product is the sum of the logs ...
    few = logp[::1000, :5]
    np.testing.assert_allclose(np.log(np.prod(np.exp(few), axis=1)), few.sum(1), rtol=1e-10)
    ml = theta[np.argmax(logp.sum(1))]
    sum_of_lik = theta[np.argmax(np.exp(logp).sum(1))]
    assert abs(ml - x.mean()) < 1e-3                          # ... maximised at the sample mean
    assert abs(sum_of_lik - ml) > 1.5                         # the sum of likelihoods picks a cluster


def test_shah_lhs_is_constant_only_for_fixed_f():
    """Shah: 'LHS of (8) is constant, so maximising the ELBO minimises the KL'; not once f is optimised too."""
    from numpyvae.theory.linear_gaussian import ppca_ml
    lg_true, rng = _lg(4, D=5, Z=2, c=0.3)
    x = lg_true.sample(400, rng)
    poor = LinearGaussian(0.1 * rng.normal(size=(5, 2)), x.mean(0), 1.0)
    good = LinearGaussian(*ppca_ml(x, 2))
    m1, S1 = poor.posterior(x)                  # exact posterior: KL = 0
    m2, S2 = good.posterior(x)
    S2_loose = 2.0 * S2                          # a worse q for the better model: KL > 0
    elbo1, kl1 = poor.elbo(x, m1, q_cov=S1).mean(), poor.kl_to_posterior(x, m1, q_cov=S1).mean()
    elbo2, kl2 = good.elbo(x, m2, q_cov=S2_loose).mean(), good.kl_to_posterior(x, m2, q_cov=S2_loose).mean()
    assert abs(kl1) < 1e-9 and kl2 > 0.1
    assert elbo2 > elbo1 + 1.0                   # the ELBO went up while the KL went up too ...
    assert good.log_marginal(x).mean() > poor.log_marginal(x).mean() + 1.0   # ... because log p(x) moved
