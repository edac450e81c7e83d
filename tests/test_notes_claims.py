"""Numbers the notes state, computed: each test fails if the note's sentence and the computation part.

Every claim here was once written wrongly in derivations/; the test computes the number and
checks that the note states it (so the old sentence fails).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.theory.linear_gaussian import LinearGaussian

DERIV = Path(__file__).resolve().parents[1] / "derivations"
pytestmark = pytest.mark.skipif(not DERIV.is_dir(), reason="derivations/ not present")


def _note(name):
    return " ".join((DERIV / name).read_text(encoding="utf-8").split())


# ------------------------------------------------------------------- note 05: recon is a cost
def test_recon_is_a_nonnegative_cost_on_binary_data():
    rng = np.random.default_rng(0)
    for seed in range(5):
        vae = nv.VAE(x_dim=10, z_dim=3, hidden=(7,), likelihood="bernoulli", seed=seed)
        vae.flat_params[...] += rng.normal(size=vae.flat_params.size)
        x = (rng.random((6, 10)) < 0.5).astype(float)
        t = vae.forward(x, k=3)
        assert t.recon >= 0 and np.all(t.recon_per_example >= 0)
        assert np.isclose(t.recon, -t.log_px_z.mean())
    text = _note("05_likelihoods.md")
    assert "is $\\ge 0$ for binarised data" in text
    assert "`Terms.recon` is $\\le 0$" not in text


def test_recon_runs_away_downward_with_a_learned_variance():
    """A shrinking variance head on a constant pixel sends the cost below 0, towards -inf."""
    vae = nv.VAE(x_dim=4, z_dim=2, hidden=(), likelihood="gaussian_learned", seed=0)
    x = np.zeros((3, 4))
    vae.params["dec.out.W"][...] = 0.0
    vae.params["dec.out.b"][...] = 0.0          # the mean equals the data exactly
    vae.params["dec.logvar.W"][...] = 0.0
    recons = []
    for s in (0.0, -5.0, -20.0):
        vae.params["dec.logvar.b"][...] = s
        recons.append(vae.forward(x, k=2).recon)
    assert recons[0] > recons[1] > recons[2] and recons[2] < 0
    assert "runs away *downward*" in _note("05_likelihoods.md")


# ---------------------------------------- notes 03 and 10: closed form vs Monte Carlo KL variance
def _exact_posterior_vae():
    """Z = D = 1, x | z ~ N(z, 1), z ~ N(0, 1); the encoder outputs the exact posterior N(x/2, 1/2)."""
    vae = nv.VAE(1, 1, hidden=(), likelihood="gaussian", c=1.0, seed=0)
    vae.params["dec.out.W"][...] = 1.0
    vae.params["dec.out.b"][...] = 0.0
    vae.params["enc.mu.W"][...] = 0.5
    vae.params["enc.mu.b"][...] = 0.0
    vae.params["enc.logvar.W"][...] = 0.0
    vae.params["enc.logvar.b"][...] = np.log(0.5)
    return vae


def _gradient_variances(kl, n=100_000):
    vae = _exact_posterior_vae()
    x = np.full((n, 1), 6.0)                     # n copies of one example: one draw of eps each
    eps = np.random.default_rng(1).normal(size=(1, n, 1))
    vae.forward(x, eps=eps, kl=kl)
    vae.backward()
    g_mu, g_v = vae.dmu[:, 0] * n, vae.dlogvar[:, 0] * n   # undo the batch mean
    return g_mu.mean(), g_mu.var(), g_v.mean(), g_v.var()


def test_closed_form_kl_is_better_for_the_mean_only():
    """At the exact posterior N(3, 1/2): Var(v-grad) 1.25 closed vs 0.5 MC; Var(mu-grad) 0.5 vs 2."""
    m_b, var_mu_b, mv_b, var_v_b = _gradient_variances("closed")
    m_a, var_mu_a, mv_a, var_v_a = _gradient_variances("mc")
    # both unbiased for the zero gradient at the optimum
    for m in (m_b, mv_b, m_a, mv_a):
        assert abs(m) < 0.02
    # theory: closed v: 2 a^2 + b^2 with a = (s^2 - 1)/2, b = s mu / 2; MC v: 1/2; mu: (1/s - s)^2 vs 1/s^2
    s2, mu = 0.5, 3.0
    theory = {"var_v_b": 2 * ((s2 - 1) / 2) ** 2 + s2 * mu ** 2 / 4, "var_v_a": 0.5,
              "var_mu_b": (1 / np.sqrt(s2) - np.sqrt(s2)) ** 2, "var_mu_a": 1 / s2}
    assert theory["var_v_b"] == pytest.approx(1.25) and theory["var_mu_b"] == pytest.approx(0.5)
    measured = {"var_v_b": var_v_b, "var_v_a": var_v_a, "var_mu_b": var_mu_b, "var_mu_a": var_mu_a}
    for key, val in theory.items():
        assert measured[key] == pytest.approx(val, rel=0.03), key
    assert var_v_b > 2 * var_v_a and var_mu_b < var_mu_a / 2
    text = _note("03_elbo.md")
    assert "variance $1.25$ with the closed form and $0.5$ with the Monte Carlo KL" in text
    assert "$0.5$ against $2$" in text
    for name in ("03_elbo.md", "10_model_family.md"):
        assert "closed form has lower variance" not in _note(name)
        assert "(its variance is lower)" not in _note(name)


# ------------------------------------------------------------------ note 03: beta > 1 is a bound
def test_beta_above_one_is_a_looser_lower_bound_and_below_one_is_none():
    rng = np.random.default_rng(2)
    lg = LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5), 0.7)
    x = lg.sample(30, rng)
    log_px = lg.log_marginal(x)
    post_mu, post_lv = lg.optimal_diagonal_q(x)
    for mu, lv in ((post_mu, post_lv), (rng.normal(size=(30, 2)), rng.normal(size=(30, 2)))):
        elbo = lg.elbo(x, mu, lv)
        kl = nv.kl.kl_normal_std(mu, lv)
        for beta in (1.0, 1.5, 4.0):
            minus_j = elbo - (beta - 1) * kl                  # -J_beta = recon - beta * KL
            assert np.all(minus_j <= log_px + 1e-12)
        assert np.all(elbo - 3.0 * kl < elbo)                # looser than the ELBO
    # beta < 1 at a q whose ELBO is within the KL of log p(x): -J_beta exceeds log p(x)
    W = np.vstack([np.diag([2.0, 0.5]), np.zeros((1, 2))])   # W^T W diagonal: q* is exact
    lg2 = LinearGaussian(W, np.zeros(3), 0.5)
    x2 = lg2.sample(10, rng)
    mu2, lv2 = lg2.optimal_diagonal_q(x2)
    assert np.allclose(lg2.elbo(x2, mu2, lv2), lg2.log_marginal(x2))
    assert np.all(lg2.elbo(x2, mu2, lv2) + 0.5 * nv.kl.kl_normal_std(mu2, lv2) > lg2.log_marginal(x2))
    text = _note("03_elbo.md")
    assert "no longer a bound on anything" not in text
    assert "still a lower bound on the log evidence" in text


# --------------------------------------------------------------- note 09: the collapse counts
def _table_row(text, start):
    for line in text.split("\n"):
        if line.startswith("| " + start):
            return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError(f"no table row starting with {start!r}")


def test_collapse_counts_are_those_of_the_table():
    raw = (DERIV / "09_prior_and_collapse.md").read_text(encoding="utf-8")
    header = _table_row(raw, "run")
    row = _table_row(raw, "Gaussian decoder")
    active = int(row[header.index("active (9.3)")])
    low_kl = int(row[header.index("dims with KL < 0.05")])
    z_dim = int(re.search(r"784-200-(\d+) VAEs", raw).group(1))
    text = " ".join(raw.split())
    m = re.search(r"collapses (\d+) of its (\d+) dimensions to under 0\.05 nats each, and (\d+) are inactive", text)
    assert m, "note 09 no longer states the collapse counts in the expected sentence"
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (low_kl, z_dim, z_dim - active)
    overlap = low_kl + active - z_dim
    assert overlap > 0 and f"at least {overlap} dimensions are both" in text
    m2 = re.search(r"and (\d+) of the (\d+) dimensions fall under 0\.05 nats \((\d+) inactive", text)
    assert m2 and (int(m2.group(1)), int(m2.group(2)), int(m2.group(3))) == (low_kl, z_dim, z_dim - active)
    assert "11 of 16 dimensions collapse" not in text


def test_average_kl_of_a_dimension_is_at_least_half_its_activity():
    """KL_j averaged over the data >= A_j / 2 (9.3), with equality for zero-mean mu_j and v_j = 0."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        mu = rng.normal(size=(200, 4)) * rng.random(4) + rng.normal(size=4)
        lv = rng.normal(size=(200, 4)) * rng.random(4)
        kl_j = 0.5 * (mu ** 2 + np.exp(lv) - lv - 1).mean(0)
        assert np.all(kl_j >= 0.5 * mu.var(0) - 1e-12)
    mu = rng.normal(size=(200, 3)) * 0.2
    mu -= mu.mean(0)
    assert np.allclose(0.5 * (mu ** 2).mean(0), 0.5 * mu.var(0))
    # an active dimension (A = 0.03 > 0.01) whose KL is under 0.05 nats: both counts at once
    mu = rng.normal(size=(5000, 1))
    mu = (mu - mu.mean()) / mu.std() * np.sqrt(0.03)
    kl = 0.5 * (mu ** 2).mean()
    assert mu.var() > 0.01 and kl < 0.05


def test_information_term_of_n_components_is_at_most_log_n():
    """I_q = mean_i KL(q_i || (1/N) sum_j q_j) <= log N, reached when the components separate."""
    rng = np.random.default_rng(4)
    for spread, n, draws in ((100.0, 50, 400), (0.3, 50, 400), (1e5, 1000, 8)):
        mus, s = rng.normal(size=n) * spread, 1.0
        z = mus[:, None] + s * rng.normal(size=(n, draws))         # samples of each q_i
        log_qi = -0.5 * ((z - mus[:, None]) / s) ** 2
        log_qall = -0.5 * ((z[:, :, None] - mus[None, None, :]) / s) ** 2
        log_agg = np.logaddexp.reduce(log_qall, axis=2) - np.log(n)
        info = float(np.mean(log_qi - log_agg))
        assert info <= np.log(n) + 1e-9
    assert info > np.log(1000) - 1.5      # well separated: close to the cap
    text = _note("09_prior_and_collapse.md")
    assert "$\\log 1000 = 6.91$" in text and "6.67 and 6.68, just under it" in text


# ---------------------------------------------------------------- note 08: (8.4) at -inf
def test_log_mean_exp_of_all_minus_infinity_is_minus_infinity():
    a = np.full((4, 3), -np.inf)
    a[:, 2] = [0.0, -1.0, -2.0, -3.0]
    with np.errstate(invalid="raise"):
        out = nv.log_mean_exp(a, axis=0)
    assert out[0] == -np.inf and out[1] == -np.inf and np.isfinite(out[2])
    assert "NaN in floating point" in _note("08_importance_sampling.md")


def test_float_limits_the_notes_quote():
    f32 = np.finfo(np.float32)
    assert np.log(f32.tiny) == pytest.approx(-87.34, abs=0.01)                     # smallest normal
    assert np.log(float(np.float32(2.0 ** -149))) == pytest.approx(-103.28, abs=0.01)
    assert float(f32.eps) ** 2 == 2.0 ** -46 and float(f32.eps) == 2.0 ** -23
    assert np.exp(-745.12) > 0 and np.exp(-745.14) == 0
    note10 = _note("10_model_family.md")
    assert "$e^{-87.3}$" in note10 and "$e^{-103.3}$" in note10 and "$\\epsilon^2 = 2^{-46}$" in note10
    assert "$e^{-88}$ to $e^{-104}$" not in note10
    assert "$\\log w < -745.13$" in _note("08_importance_sampling.md")


# ---------------------------------------------------------------- note 10: VQ codebook gradient
def test_vq_codebook_surrogate_loses_reconstruction_and_commitment_parts():
    rng = np.random.default_rng(5)
    vq = nv.VQVAE(6, n_codes=2, code_dim=2, codebook_size=4, hidden=(4,), activation="tanh", seed=0)
    x = rng.random((3, 6))
    assert vq.quantization_margin(x) > 1e-6
    vq.forward(x)
    vq.backward()
    name = [k for k in vq.params if "code" in k][0]
    surrogate = vq.grads[name].copy()
    true = nv.gradcheck.numerical_grad(lambda: vq.forward(x).loss, vq.params[name])
    codebook_only = nv.gradcheck.numerical_grad(lambda: vq.forward(x).codebook, vq.params[name])
    # the surrogate is exactly the codebook term's own gradient ...
    assert nv.gradcheck.rel_error(surrogate, codebook_only) < 1e-6
    # ... and the truth also has the reconstruction and the commitment parts
    rec = nv.gradcheck.numerical_grad(lambda: vq.forward(x).recon, vq.params[name])
    com = nv.gradcheck.numerical_grad(lambda: vq.forward(x).commitment, vq.params[name])
    assert np.abs(rec).max() > 1e-6 and np.abs(com).max() > 1e-6
    assert nv.gradcheck.rel_error(true, surrogate + rec + com) < 1e-6
    assert "recon and commitment parts dropped" in _note("10_model_family.md")


# ---------------------------------------------------------- note 01: Doersch's ring, as a figure
def test_simple_prior_ring_script_matches_the_note(tmp_path, capsys):
    """examples/19_simple_prior.py pushes N(0, I) through g(z) = z/10 + z/||z|| (1.11)."""
    import importlib.util

    import matplotlib
    matplotlib.use("Agg")
    script = DERIV.parent / "examples" / "19_simple_prior.py"
    spec = importlib.util.spec_from_file_location("simple_prior_example", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path)]) == 0
    png = tmp_path / "simple_prior_ring.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    m = re.search(r"mean ([\d.]+) \(theory ([\d.]+)\), sd ([\d.]+) \(theory ([\d.]+)\)", out)
    mean, mean_th, sd, sd_th = map(float, m.groups())
    assert mean_th == pytest.approx(1 + np.sqrt(np.pi / 2) / 10, abs=1e-4)
    assert sd_th == pytest.approx(np.sqrt(2 - np.pi / 2) / 10, abs=1e-4)
    assert abs(mean - mean_th) < 4 * sd_th / np.sqrt(5000) and abs(sd - sd_th) < 0.005
    frac = float(re.search(r"radius in \[1, 1.3\]: ([\d.]+)", out).group(1))
    # the ring map: every point moves out to radius 1 + ||z||/10
    z = np.random.default_rng(0).normal(size=(100, 2))
    assert np.allclose(np.linalg.norm(module.ring_map(z), axis=1), 1 + np.linalg.norm(z, axis=1) / 10)
    text = _note("01_generative_model.md")
    assert "simple_prior_ring.png" in text
    assert f"mean {mean:.4f}, standard deviation {sd:.4f}" in text
    assert frac >= 0.99 and "99% of the radii between 1 and 1.3" in text
