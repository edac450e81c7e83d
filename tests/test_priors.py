"""Learned priors: log-densities against a plain sum, every gradient against central differences
in float64 on hypothesis-drawn shapes, and the closed-form bounds that bracket the mixture KL."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae import kl, priors
from numpyvae.gradcheck import check_function
from numpyvae.layers import MLP, Linear

from _helpers import FAST, PASS, batch, ksamp, seeds

comps = st.integers(1, 6)
zdims = st.integers(1, 5)


def _mixture(rng, C, Z):
    return (rng.standard_normal((C, Z)), rng.uniform(-1.5, 1.0, (C, Z)), rng.standard_normal(C))


def _plain_log_mixture(z, means, logvars, log_w):
    """The textbook sum: log sum_c w_c N(z; m_c, diag e^s_c), one component at a time."""
    terms = [log_w[c] + kl.log_normal_diag(z, means[c], logvars[c]) for c in range(len(log_w))]
    return np.log(np.sum(np.exp(terms), axis=0))


@FAST
@given(k=ksamp, b=batch, c=comps, z=zdims, seed=seeds)
def test_log_mixture_equals_the_plain_sum_and_resp_is_a_softmax(k, b, c, z, seed):
    rng = np.random.default_rng(seed)
    means, logvars, logits = _mixture(rng, c, z)
    log_w = logits - np.log(np.sum(np.exp(logits)))
    zs = rng.standard_normal((k, b, z))
    log_p, resp = priors.log_mixture(zs, means, logvars, log_w)
    assert log_p.shape == (k, b) and resp.shape == (k, b, c)
    np.testing.assert_allclose(log_p, _plain_log_mixture(zs, means, logvars, log_w), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(resp.sum(-1), 1.0, rtol=1e-12)


def test_log_mixture_is_stable_far_from_every_component():
    """At |z| = 60 every exp(term) underflows in the plain sum; the log-sum-exp stays finite."""
    means, logvars = np.zeros((3, 2)), np.full((3, 2), -2.0)
    z = np.full((1, 2), 60.0)
    log_p, resp = priors.log_mixture(z, means, logvars, np.log(np.full(3, 1 / 3)))
    expected = kl.log_normal_diag(z, means[0], logvars[0])      # three equal components
    assert np.isfinite(log_p).all() and np.isfinite(resp).all()
    np.testing.assert_allclose(log_p, expected, rtol=1e-12)


@FAST
@given(k=ksamp, b=batch, c=comps, z=zdims, seed=seeds)
def test_mixture_prior_gradients(k, b, c, z, seed):
    """z, means, logvars and logits, for a weighted sum of log p(z)."""
    rng = np.random.default_rng(seed)
    prior = priors.MixturePrior(c, z, seed=seed % 1000)
    prior.means[...], prior.logvars[...], prior.logits[...] = _mixture(rng, c, z)
    zs = rng.standard_normal((k, b, z))
    w = rng.standard_normal((k, b))

    def f():
        return float(np.sum(w * prior.log_prob(zs)))

    f()
    dz = prior.backward(w)
    grads = {"means": prior.dmeans.copy(), "logvars": prior.dlogvars.copy(), "logits": prior.dlogits.copy()}
    rep = check_function(f, dz, zs, name="z")
    for name, g in grads.items():
        rep.rows += check_function(f, g, getattr(prior, name), name=name).rows
    assert rep.max_error < PASS, str(rep)


@FAST
@given(b=batch, z=zdims, seed=seeds)
def test_standard_normal_prior_gradient(b, z, seed):
    rng = np.random.default_rng(seed)
    prior = priors.StandardNormalPrior(z)
    zs, w = rng.standard_normal((2, b, z)), rng.standard_normal((2, b))

    def f():
        return float(np.sum(w * prior.log_prob(zs)))

    f()
    rep = check_function(f, prior.backward(w), zs, name="z")
    assert rep.max_error < PASS, str(rep)


class _Encoder:
    """A small Gaussian encoder (trunk + two heads) with a forward/backward pair, as a VAE has."""

    def __init__(self, d, h, z, rng):
        self.trunk = MLP((d, h), "tanh", rng, np.float64)
        self.mu = Linear(h, z, rng, "glorot", np.float64)
        self.logvar = Linear(h, z, rng, "glorot", np.float64)

    def forward(self, x):
        h = self.trunk.forward(x)
        return self.mu.forward(h), self.logvar.forward(h)

    def backward(self, dmu, dlogvar):
        return self.trunk.backward(self.mu.backward(dmu) + self.logvar.backward(dlogvar))


@FAST
@given(k=ksamp, b=batch, c=comps, z=zdims, seed=seeds)
def test_vamp_prior_gradients_through_the_encoder(k, b, c, z, seed):
    """z, the pseudo-inputs, and the encoder weights the components are computed with."""
    rng = np.random.default_rng(seed)
    d = 4
    enc = _Encoder(d, 5, z, rng)
    prior = priors.VampPrior(c, d, seed=seed % 1000)
    zs = rng.standard_normal((k, b, z))
    w = rng.standard_normal((k, b))

    def f():
        mu_u, lv_u = enc.forward(prior.pseudo)
        return float(np.sum(w * prior.log_prob(zs, mu_u, lv_u)))

    f()
    dz, dmu_u, dlv_u = prior.backward(w)
    prior.set_input_grad(enc.backward(dmu_u, dlv_u))
    weights = {"trunk.W": (enc.trunk.linears[0].W, enc.trunk.linears[0].dW.copy()),
               "mu.W": (enc.mu.W, enc.mu.dW.copy()), "logvar.b": (enc.logvar.b, enc.logvar.db.copy())}
    rep = check_function(f, dz, zs, name="z")
    rep.rows += check_function(f, prior.dpseudo.copy(), prior.pseudo, name="pseudo").rows
    for name, (p, g) in weights.items():
        rep.rows += check_function(f, g, p, name=name).rows
    assert rep.max_error < PASS, str(rep)


@FAST
@given(b=batch, c=comps, z=zdims, seed=seeds)
def test_mixture_kl_bounds_bracket_the_monte_carlo_kl(b, c, z, seed):
    """lower <= KL(q || p) <= upper; the KL itself by 20000 Monte Carlo draws (5 standard errors)."""
    rng = np.random.default_rng(seed)
    means, logvars, logits = _mixture(rng, c, z)
    log_w = logits - np.log(np.sum(np.exp(logits)))
    mu, logvar = rng.standard_normal((b, z)), rng.uniform(-1.5, 0.5, (b, z))
    lower, upper = priors.kl_mixture_bounds(mu, logvar, means, logvars, log_w)
    zs = mu + np.exp(0.5 * logvar) * rng.standard_normal((20000, b, z))
    sample = kl.log_normal_diag(zs, mu, logvar) - priors.log_mixture(zs, means, logvars, log_w)[0]
    est, se = sample.mean(0), sample.std(0) / np.sqrt(len(sample))
    assert np.all(lower <= upper + 1e-12)
    assert np.all(est >= lower - 5 * se - 1e-9) and np.all(est <= upper + 5 * se + 1e-9)


def test_one_component_bounds_are_the_closed_form_kl():
    """With C = 1 both bounds collapse to the Gaussian KL (2.6): a factor wrong in either shows."""
    rng = np.random.default_rng(3)
    mu, logvar = rng.standard_normal((4, 3)), rng.uniform(-1, 1, (4, 3))
    m, s = rng.standard_normal((1, 3)), rng.uniform(-1, 1, (1, 3))
    lower, upper = priors.kl_mixture_bounds(mu, logvar, m, s, np.zeros(1))
    exact = kl.kl_normal_normal(mu, logvar, m[0], s[0])
    np.testing.assert_allclose(upper, exact, rtol=1e-12)
    assert np.all(lower <= exact + 1e-12) and np.all(lower < exact - 1e-3)   # Jensen is strict here


def test_mixture_prior_samples_follow_the_mixture():
    prior = priors.MixturePrior(2, 1, seed=0)
    prior.means[:, 0] = [-4.0, 4.0]
    prior.logvars[...] = np.log(0.25)
    prior.logits[...] = [np.log(3.0), 0.0]                       # weights 3/4, 1/4
    z = prior.sample(40000, np.random.default_rng(1))
    left = z[:, 0] < 0
    assert abs(left.mean() - 0.75) < 0.01
    assert abs(z[left, 0].mean() + 4) < 0.02 and abs(z[left, 0].std() - 0.5) < 0.02


@pytest.mark.parametrize("spec, expected", [("normal", ("normal", 0)), ("mog:10", ("mog", 10)),
                                            ("vamp:500", ("vamp", 500))])
def test_parse_prior_accepts(spec, expected):
    assert priors.parse_prior(spec) == expected


@pytest.mark.parametrize("spec, needle", [("mog", "positive component count"), ("vamp:0", "positive"),
                                          ("mog:x", "positive"), ("flow:3", "'normal', 'mog:K' or 'vamp:K'"),
                                          ("normal:3", "no component count"), (10, "must be a string")])
def test_parse_prior_refuses_with_one_line(spec, needle):
    with pytest.raises(ValueError, match=needle) as err:
        priors.parse_prior(spec)
    assert "\n" not in str(err.value)


def test_vamp_init_shape_is_checked():
    with pytest.raises(ValueError, match=r"init must have shape \(3, 4\)"):
        priors.VampPrior(3, 4, init=np.zeros((2, 4)))


# ------------------------------------------------------------------ the model with a learned prior
from numpyvae.cli.main import main as cli_main  # noqa: E402
from numpyvae.gradcheck import check_model  # noqa: E402
from numpyvae.model import VAE  # noqa: E402
from numpyvae.training import checkpoint as ck  # noqa: E402
from numpyvae.training.trainer import read_history  # noqa: E402

specs = st.sampled_from(["normal", "mog:1", "mog:3", "vamp:1", "vamp:4"])


@FAST
@given(spec=specs, b=st.integers(1, 4), k=st.integers(1, 3), z=st.integers(1, 3),
       deep=st.booleans(), beta=st.floats(0.1, 2.0), seed=seeds)
def test_prior_vae_whole_gradient_through_the_sampling_step(spec, b, k, z, deep, beta, seed):
    """Every parameter (encoder, decoder, the prior's own) against central differences, eps fixed."""
    m = priors.PriorVAE(5, z, hidden=(4,) if deep else (), activation="tanh", prior=spec, seed=seed % 1000)
    rng = np.random.default_rng(seed)
    if spec.startswith("mog"):
        m.prior.logvars[...] = rng.uniform(-1, 0.5, m.prior.logvars.shape)
        m.prior.logits[...] = rng.standard_normal(m.prior.logits.shape)
    x = rng.uniform(0, 1, (b, 5))
    rep = check_model(m, x, eps=rng.standard_normal((k, b, z)), beta=beta)
    names = {row[0] for row in rep.rows}
    assert all(f"prior.{n}" in names for n in m.prior.param_names())
    assert rep.max_error < PASS, str(rep)


def test_prior_vae_with_the_standard_normal_is_the_plain_model_with_the_monte_carlo_kl():
    """Same seed, same weights: the same loss and the same gradients as VAE(kl='mc')."""
    rng = np.random.default_rng(0)
    x, eps = rng.uniform(0, 1, (6, 8)), rng.standard_normal((3, 6, 2))
    plain, learned = VAE(8, 2, hidden=(5,), seed=4), priors.PriorVAE(8, 2, hidden=(5,), seed=4, prior="normal")
    np.testing.assert_array_equal(plain.flat_params, learned.flat_params)
    lp, gp = plain.loss_and_grads(x, eps=eps, kl="mc", beta=0.5)
    ll, gl = learned.loss_and_grads(x, eps=eps, beta=0.5)
    assert ll == pytest.approx(lp, rel=1e-12)
    for name, g in gp.items():
        np.testing.assert_allclose(gl[name], g, rtol=1e-10, atol=1e-12)


def test_prior_vae_log_weights_use_the_learned_prior():
    """log w = log p(x|z) + log p_lambda(z) - log q(z|x): the K-sample mean of log w is the ELBO."""
    rng = np.random.default_rng(1)
    m = priors.PriorVAE(8, 3, hidden=(6,), prior="vamp:5", seed=2)
    x, eps = rng.uniform(0, 1, (4, 8)), rng.standard_normal((50, 4, 3))
    lw = m.log_weights(x, eps)
    t = m.forward(x, eps=eps)
    np.testing.assert_allclose(lw.mean(0), t.elbo_per_example, rtol=1e-10)
    mu_u, lv_u = m.encode(m.prior.pseudo)
    z = t.z
    expected = (m.log_px_given_z(x, z) + priors.log_mixture(z, mu_u, lv_u, np.full(5, -np.log(5)))[0]
                - kl.log_normal_diag(z, t.mu, t.logvar))
    np.testing.assert_allclose(lw, expected, rtol=1e-10)


def test_prior_vae_config_copy_and_samples():
    m = priors.PriorVAE(8, 2, hidden=(5,), prior="mog:3", seed=3)
    m.prior.means[...] = [[5.0, 5.0], [5.0, 5.0], [5.0, 5.0]]
    c = m.copy(np.float32)
    assert type(c) is priors.PriorVAE and c.config["prior"] == "mog:3" and c.config["model"] == "prior"
    np.testing.assert_array_equal(c.prior.means, 5.0)       # the prior's parameters travel with the weights
    assert m.sample(4).shape == (4, 8)
    with pytest.raises(ValueError, match="positive component count"):
        priors.PriorVAE(8, 2, prior="mog:0")


TINY = ["--max-train", "300", "--hidden", "32", "--z-dim", "3", "--no-progress"]


@pytest.mark.parametrize("spec", ["mog:4", "vamp:6"])
def test_cli_prior_run_resumes_bit_for_bit_and_evaluates_with_iw_k(tmp_path, capsys, spec):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert cli_main(["train", *TINY, "--prior", spec, "--epochs", "2", "--out", str(straight)]) == 0
    assert cli_main(["train", *TINY, "--prior", spec, "--epochs", "1", "--out", str(resumed)]) == 0
    assert cli_main(["train", "--resume", "--epochs", "2", "--no-progress", "--out", str(resumed)]) == 0
    a, b = ck.load(str(straight / "checkpoint.npz")), ck.load(str(resumed / "checkpoint.npz"))
    assert a.model_config["prior"] == spec and a.meta["model"] == "prior"
    assert any(n.startswith("prior.") for n in a.params)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    assert read_history(straight / "history.csv") == read_history(resumed / "history.csv")
    capsys.readouterr()
    assert cli_main(["evaluate", str(straight / "checkpoint.npz"), "--iw-k", "10", "--max-examples", "50"]) == 0
    out = capsys.readouterr().out
    elbo = -float(out.split("negative ELBO: ")[1].split()[0])
    ll = float(out.split("K = 10: ")[1].split()[0])
    assert ll > elbo - 1.0                    # the 10-sample bound sits above the one-sample ELBO
    # a different prior on --resume contradicts the checkpoint: one line, exit 2
    assert cli_main(["train", "--resume", "--prior", "mog:9", "--epochs", "3", "--no-progress",
                     "--out", str(resumed)]) == 2
    assert "--prior mog:9 (the run has " in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [(["--prior", "vamp:0"], "positive component count"),
                                          (["--prior", "flow:2"], "'normal', 'mog:K' or 'vamp:K'"),
                                          (["--prior", "mog:3", "--objective", "iwae"], "works with the plain VAE")])
def test_cli_prior_refuses_with_one_line(tmp_path, capsys, argv, needle):
    assert cli_main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
