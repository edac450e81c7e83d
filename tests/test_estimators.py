"""Importance-sampled log-likelihood, gradient estimators, energy + entropy, MC vs closed KL."""

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.iwae import log_mean_exp
from numpyvae.theory import estimators as est
from numpyvae.theory.linear_gaussian import LinearGaussian


# ----------------------------------------------------------------- fixtures
def linear_vae(seed=0, D=5, Z=2, c=0.5, inflate=1.0, shift=0.0):
    """A hidden=() Gaussian VAE whose encoder mean is the exact posterior mean (plus
    ``shift``) and whose variances are the posterior marginals times ``inflate``."""
    vae = nv.VAE(D, Z, hidden=(), likelihood="gaussian", c=c, seed=seed)
    rng = np.random.default_rng(seed + 100)
    vae.params["dec.out.W"][...] = rng.normal(size=(Z, D))
    vae.params["dec.out.b"][...] = rng.normal(size=D)
    lg = LinearGaussian.from_vae(vae)
    A = lg.W @ lg.post_cov / lg.c  # (D, Z): posterior mean = (x - b) A
    vae.params["enc.mu.W"][...] = A
    vae.params["enc.mu.b"][...] = -lg.b @ A + shift
    vae.params["enc.logvar.W"][...] = 0.0
    vae.params["enc.logvar.b"][...] = np.log(inflate * np.diag(lg.post_cov))
    return vae, lg


def small_bernoulli_vae(seed=0):
    vae = nv.VAE(12, 3, hidden=(16,), likelihood="bernoulli", activation="tanh", seed=seed)
    x = (np.random.default_rng(seed).random((40, 12)) < 0.3).astype(float)
    return vae, x


def quadratic(A, a):
    """f(z) = -1/2 (z - a)^T A (z - a) with its gradient, and the exact gradient of E_q f."""

    def f(z):
        d = z - a
        return -0.5 * np.einsum("...i,ij,...j->...", d, A, d)

    def f_and_grad(z):
        return f(z), -(z - a) @ A

    def exact(mu, logvar):
        # E_q f = -1/2 [(mu - a)^T A (mu - a) + sum_j A_jj sigma_j^2]
        return -(mu - a) @ A, -0.5 * np.diag(A) * np.exp(logvar)

    return f, f_and_grad, exact


# ----------------------------------------------------------------- log_mean_exp
def test_log_mean_exp_matches_naive_and_is_stable():
    a = np.random.default_rng(0).normal(size=(7, 4))
    np.testing.assert_allclose(log_mean_exp(a, axis=0), np.log(np.mean(np.exp(a), axis=0)), atol=1e-14)
    np.testing.assert_allclose(log_mean_exp(a, axis=1, keepdims=True),
                               np.log(np.mean(np.exp(a), axis=1, keepdims=True)), atol=1e-14)
    big = np.array([1000.0, 1000.0 + np.log(3.0)])
    assert log_mean_exp(big) == pytest.approx(1000.0 + np.log(2.0), abs=1e-12)
    tiny = np.array([-5000.0, -5000.0])
    assert log_mean_exp(tiny) == pytest.approx(-5000.0, abs=1e-12)
    with_inf = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    out = log_mean_exp(with_inf, axis=0)
    assert out[0] == pytest.approx(np.log(0.5)) and out[1] == -np.inf
    with pytest.raises(ValueError, match="at least one"):
        log_mean_exp(np.empty((0, 3)), axis=0)


# ----------------------------------------------------------------- importance sampling
def test_log_likelihood_matches_exact_linear_gaussian_within_mc_error():
    # a deliberately imperfect proposal: shifted means, inflated variances
    vae, lg = linear_vae(inflate=1.5, shift=0.3)
    x = lg.sample(60, np.random.default_rng(1))
    exact = lg.log_marginal(x)
    ll, se = est.log_likelihood(vae, x, k=5000, rng=2, return_stderr=True)
    z = (ll - exact) / se
    assert np.max(np.abs(z)) < 4.5, np.max(np.abs(z))
    # average over examples: bias + noise within 4 standard errors of the mean
    assert abs(np.mean(ll - exact)) < 4 * np.sqrt(np.sum(se**2)) / len(x)
    # the delta-method standard error shrinks like 1 / sqrt(K)
    _, se_small = est.log_likelihood(vae, x, k=500, rng=3, return_stderr=True)
    assert 2.5 < np.mean(se_small) / np.mean(se) < 4.0  # sqrt(10) = 3.16


def test_log_likelihood_agrees_with_decoder_weights_of_a_trained_linear_vae():
    rng = np.random.default_rng(0)
    truth = LinearGaussian(rng.normal(size=(4, 2)), rng.normal(size=4), 0.2)
    data = truth.sample(1000, rng)
    vae = nv.VAE(4, 2, hidden=(), likelihood="gaussian", c=0.2, seed=1)
    opt = nv.optim.Adam(lr=0.02)
    for _ in range(1000):
        vae.forward(data[rng.choice(1000, 100, replace=False)])
        vae.backward()
        opt.step(vae.flat_params, vae.flat_grads)
    lg = LinearGaussian(vae.params["dec.out.W"].T, vae.params["dec.out.b"], vae.c)
    x = data[:40]
    ll, se = est.log_likelihood(vae, x, k=5000, rng=3, return_stderr=True)
    exact = lg.log_marginal(x)
    assert np.max(np.abs(ll - exact) / se) < 4.5
    # the encoder's ELBO sits strictly below (the diagonal q cannot be exact here)
    mu, lv = vae.encode(x)
    assert np.all(lg.elbo(x, mu, lv) < exact)


def test_bound_increases_with_k_and_stays_below_exact():
    vae, lg = linear_vae(seed=1, inflate=2.0, shift=0.5)
    x = lg.sample(400, np.random.default_rng(5))
    exact = lg.log_marginal(x).mean()
    means, ses = [], []
    for k in (1, 10, 100):
        b = est.log_likelihood(vae, x, k, rng=10 + k)
        means.append(b.mean())
        ses.append((b - lg.log_marginal(x)).std(ddof=1) / np.sqrt(len(x)))
        assert b.mean() - exact < 3 * ses[-1]  # E[bound] <= log p(x)
    assert means[0] < means[1] < means[2]
    # the gap at K = 1 is clearly negative: it is the ELBO's KL(q || p(z|x))
    assert exact - means[0] > 10 * ses[0]
    # K = 1 estimates the ELBO, which is exact here
    mu, lv = vae.encode(x)
    assert abs(means[0] - lg.elbo(x, mu, lv).mean()) < 4 * ses[0]


def test_proposal_override():
    vae, lg = linear_vae(seed=4, inflate=1.0, shift=2.0)  # the encoder's means are far off
    x = lg.sample(30, np.random.default_rng(0))
    m, C = lg.posterior(x)
    good = (m, np.log(np.broadcast_to(1.3 * np.diag(C), m.shape)))
    exact = lg.log_marginal(x)
    ll, se = est.log_likelihood(vae, x, k=2000, rng=1, return_stderr=True, q=good)
    assert np.max(np.abs(ll - exact) / se) < 4.5
    # the same K with the encoder's poor proposal is much further below
    assert np.mean(exact - est.log_likelihood(vae, x, k=2000, rng=1)) > 10 * np.mean(exact - ll)
    with pytest.raises(ValueError, match="q must be"):
        est.log_likelihood(vae, x, 3, q=(m[:2], good[1]))


def test_sample_chunking_is_exact_and_memory_bounded():
    vae, x = small_bernoulli_vae()
    seen = []
    orig = vae.log_px_given_z

    def spy(xb, z, grad=False):
        seen.append(z.shape[0] * z.shape[1])
        return orig(xb, z, grad)

    vae.log_px_given_z = spy
    one_chunk = est.log_likelihood(vae, x, k=300, rng=7, batch_size=40)
    assert max(seen) == 300 * 40
    seen.clear()
    width = max(vae.x_dim, *vae.hidden)
    budget = 7 * 40 * width  # room for 7 samples of the 40 examples at a time
    chunked = est.log_likelihood(vae, x, k=300, rng=7, batch_size=40, max_floats=budget)
    assert max(seen) * width <= budget and len(seen) == int(np.ceil(300 / 7))
    np.testing.assert_allclose(chunked, one_chunk, rtol=0, atol=1e-10)
    # and the same number computed by hand from the log-weights
    g = np.random.default_rng(7)
    eps = nv.reparam.sample_eps(g, 300, 40, 3)
    mu, lv = vae.encode(x)
    z = nv.reparam.reparameterize(mu, lv, eps)
    lw = orig(x, z) + nv.kl.log_std_normal(z) - nv.kl.log_normal_diag(z, mu, lv)
    np.testing.assert_allclose(one_chunk, log_mean_exp(lw, axis=0), atol=1e-10)


def test_an_example_no_sample_can_explain_has_log_likelihood_minus_infinity():
    """Eq. (8.4): where every weight is 0 the estimate is -inf (not NaN), chunk after chunk;
    the other examples are unaffected."""
    vae = nv.VAE(3, 2, hidden=(), likelihood="bernoulli", seed=0)
    vae.params["dec.out.W"][...] = 0
    vae.params["dec.out.b"][...] = [-1e308, -1e308, 0.0]    # pixels 0 and 1 are (almost) never on
    x = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])         # log p(x_0 | z) overflows to -inf
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ll = est.log_likelihood(vae, x, k=12, rng=0, max_floats=2 * 3 * 5)
    assert ll[0] == -np.inf and np.isfinite(ll[1])


def test_mnist_sized_chunks_fit_the_default_budget():
    vae = nv.VAE(784, 20, hidden=(400,), seed=0)
    bc, kc = est._chunks(vae, 10_000, 5000, None, est.DEFAULT_MAX_FLOATS)
    assert bc * kc * 784 <= est.DEFAULT_MAX_FLOATS and kc >= 1
    assert bc * kc * 784 * 8 <= 200e6  # bytes of one float64 decoder output chunk


@pytest.mark.slow
def test_mnist_sized_evaluation_peak_memory():
    import tracemalloc

    vae = nv.VAE(784, 20, hidden=(400,), seed=0)
    x = (np.random.default_rng(0).random((100, 784)) < 0.2).astype(float)
    k = 300
    tracemalloc.start()
    est.log_likelihood(vae, x, k=k, rng=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # all K samples at once would need K * B * D float64 for the decoder output alone
    # (188 MB here, and several such buffers); the chunked run stays below that in total
    assert peak < k * 100 * 784 * 8, peak / 1e6


def test_evaluate_bounds_table():
    vae, lg = linear_vae(seed=2, inflate=2.0, shift=0.5)
    x = lg.sample(300, np.random.default_rng(0))
    rows = est.evaluate_bounds(vae, x, ks=(1, 10, 100, 1000), rng=0)
    assert [r["k"] for r in rows] == ["elbo", 1, 10, 100, 1000]
    assert rows[1]["mean"] < rows[2]["mean"] < rows[3]["mean"] < rows[4]["mean"]
    mu, lv = vae.encode(x)
    exact, elbo = lg.log_marginal(x).mean(), lg.elbo(x, mu, lv).mean()
    assert abs(rows[0]["mean"] - elbo) < 0.02  # 100-sample ELBO with the exact KL
    assert rows[4]["mean"] < exact
    assert (exact - rows[4]["mean"]) < 0.01 * (exact - elbo)  # K = 1000 closes > 99% of the gap
    lines = est.format_table(rows).splitlines()
    assert lines[0].split() == ["k", "mean", "stderr", "seconds"]
    assert len(lines) == len(rows) + 2 and set(lines[1]) == {"-", " "}
    for line, r in zip(lines[2:], rows, strict=True):
        assert line.split()[:3] == [str(r["k"]), f"{r['mean']:.4f}", f"{r['stderr']:.4f}"]


def test_bad_inputs():
    vae, x = small_bernoulli_vae()
    with pytest.raises(ValueError, match="k"):
        est.log_likelihood(vae, x, 0)
    with pytest.raises(ValueError, match="x"):
        est.log_likelihood(vae, x[:, :5], k=2)
    with pytest.raises(TypeError, match="rng"):
        est.log_likelihood(vae, x, k=2, rng="seed")
    with pytest.raises(ValueError, match="batch_size"):
        est.log_likelihood(vae, x, k=2, batch_size=0)


# ----------------------------------------------------------------- gradient estimators
def _quadratic_case():
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    a = np.array([0.5, -1.0])
    mu = np.array([1.5, 0.2])
    logvar = np.array([-1.0, 0.3])
    return A, a, mu, logvar


@pytest.mark.parametrize("which", ["score", "score_baseline", "pathwise"])
def test_gradient_estimators_are_unbiased_on_a_quadratic(which):
    A, a, mu, logvar = _quadratic_case()
    f, fg, exact = quadratic(A, a)
    n = 200_000
    if which == "pathwise":
        g_mu, g_lv = est.pathwise_grad(fg, mu, logvar, n, rng=0)
    else:
        g_mu, g_lv = est.score_function_grad(f, mu, logvar, n, rng=0, baseline=which == "score_baseline")
    e_mu, e_lv = exact(mu, logvar)
    for g, e in ((g_mu, e_mu), (g_lv, e_lv)):
        se = g.std(axis=0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(g.mean(axis=0) - e) < 4 * se), (g.mean(0), e, se)


def test_pathwise_has_far_lower_variance_for_a_narrow_q():
    # narrow q (sigma^2 = e^-3 ~ 0.05) far from the optimum of f: the score function
    # multiplies a large f by eps / sigma, the pathwise gradient barely varies.
    A, a, _, _ = _quadratic_case()
    mu, logvar = np.array([3.0, -2.0]), np.array([-3.0, -3.0])
    f, fg, _ = quadratic(A, a)
    s_mu, _ = est.score_function_grad(f, mu, logvar, 20_000, rng=1)
    p_mu, _ = est.pathwise_grad(fg, mu, logvar, 20_000, rng=1)
    ratio = s_mu.var(axis=0).sum() / p_mu.var(axis=0).sum()
    assert ratio > 1000, ratio


def test_pathwise_grad_on_decoder_likelihood_matches_finite_difference():
    vae, x = small_bernoulli_vae(1)
    xb = x[:1]
    mu, logvar = vae.encode(xb)

    def fg(z):  # z (n, 1, Z)
        lp, dz = vae.log_px_given_z(xb, z, grad=True)
        return lp, dz

    g_mu, g_lv = est.pathwise_grad(fg, mu, logvar, 400, rng=2)
    # same eps -> the mean pathwise gradient is the derivative of the sample average
    eps = np.random.default_rng(2).standard_normal((400,) + mu.shape)

    def avg(m, lv):
        return vae.log_px_given_z(xb, m + np.exp(0.5 * lv) * eps).mean()

    h = 1e-6
    for j in range(3):
        d = np.zeros_like(mu)
        d[0, j] = h
        fd_mu = (avg(mu + d, logvar) - avg(mu - d, logvar)) / (2 * h)
        fd_lv = (avg(mu, logvar + d) - avg(mu, logvar - d)) / (2 * h)
        assert g_mu.mean(0)[0, j] == pytest.approx(fd_mu, rel=1e-6, abs=1e-8)
        assert g_lv.mean(0)[0, j] == pytest.approx(fd_lv, rel=1e-6, abs=1e-8)


# ----------------------------------------------------------------- energy + entropy
def test_energy_plus_entropy_equals_recon_minus_kl_within_mc_error():
    vae, x = small_bernoulli_vae(2)
    k = 4000
    elbo, energy, entropy = est.elbo_energy_entropy(vae, x, k=k, rng=0)
    mu, lv = vae.encode(x)
    # independent evaluation of E log p(x|z) - KL(q || p(z)) with the closed-form KL
    eps = nv.reparam.sample_eps(np.random.default_rng(1), k, len(x), 3)
    z = nv.reparam.reparameterize(mu, lv, eps)
    lpxz = vae.log_px_given_z(x, z)
    ref = lpxz.mean(0) - nv.kl.kl_normal_std(mu, lv)
    # standard error of the difference: both are averages of k draws
    z2 = nv.reparam.reparameterize(mu, lv, nv.reparam.sample_eps(np.random.default_rng(0), k, len(x), 3))
    s_energy = (vae.log_px_given_z(x, z2) + nv.kl.log_std_normal(z2)).std(0, ddof=1)
    se = np.sqrt(s_energy**2 + lpxz.std(0, ddof=1) ** 2) / np.sqrt(k)
    assert np.max(np.abs(elbo - ref) / se) < 4.5
    np.testing.assert_allclose(entropy, 0.5 * np.sum(1 + np.log(2 * np.pi) + lv, axis=1))


def test_energy_plus_entropy_is_exact_elbo_for_linear_gaussian():
    vae, lg = linear_vae(seed=3, inflate=1.3, shift=0.2)
    x = lg.sample(30, np.random.default_rng(4))
    mu, lv = vae.encode(x)
    H = 0.5 * np.sum(1 + np.log(2 * np.pi) + lv, axis=1)
    # closed form on both sides
    np.testing.assert_allclose(lg.expected_log_joint(x, mu, lv) + H, lg.elbo(x, mu, lv), rtol=0, atol=1e-10)
    # and the Monte Carlo version agrees with it
    k = 20_000
    elbo, energy, entropy = est.elbo_energy_entropy(vae, x, k=k, rng=5)
    np.testing.assert_allclose(entropy, H, atol=1e-12)
    # Monte Carlo standard error of the energy, from an independent set of samples
    z = nv.reparam.reparameterize(mu, lv, nv.reparam.sample_eps(np.random.default_rng(6), k, 30, 2))
    se = lg.log_joint(x, z).std(axis=0, ddof=1) / np.sqrt(k)
    assert np.max(np.abs(energy - lg.expected_log_joint(x, mu, lv)) / se) < 4.5
    assert abs(np.mean(elbo - lg.elbo(x, mu, lv))) < 4 * np.sqrt(np.sum(se**2)) / 30


# ----------------------------------------------------------------- MC versus closed form
def test_kl_mc_error_unbiased_and_root_n():
    mu, lv = np.array([1.0, -0.5, 0.3]), np.array([-1.0, 0.5, 0.0])
    rows = est.kl_mc_error(mu, lv, ns=(10, 1000), n_rep=400, rng=0)
    for r in rows:
        assert abs(r["bias"]) < 4 * r["sd"] / np.sqrt(400)
        assert r["kl_closed"] == pytest.approx(float(nv.kl.kl_normal_std(mu, lv)))
    ratio = rows[0]["rmse"] / rows[1]["rmse"]
    assert 8 < ratio < 12.5, ratio  # sqrt(1000 / 10) = 10


def test_elbo_gradient_variance_falls_like_one_over_k():
    vae, x = small_bernoulli_vae(3)
    rows = est.elbo_gradient_variance(vae, x, ks=(1, 5, 50), n_rep=60, rng=0)
    v = {r["k"]: r["total_var"] for r in rows}
    assert 3 < v[1] / v[5] < 8  # 5 expected
    assert 30 < v[1] / v[50] < 80  # 50 expected
