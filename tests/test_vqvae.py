"""VQ-VAE (note 10, eqs. 10.11-10.18): what finite differences can and cannot grade."""
from __future__ import annotations

import numpy as np
import pytest
from _helpers import FAST, seeds
from hypothesis import assume, given
from hypothesis import strategies as st

import numpyvae as nv
from numpyvae.gradcheck import check_model, numerical_grad, rel_error
from numpyvae.vqvae import perplexity


def _vq(seed, x_dim=6, M=2, d=2, K=5, hidden=(5,), likelihood="bernoulli", beta=0.25):
    vq = nv.VQVAE(x_dim, n_codes=M, code_dim=d, codebook_size=K, hidden=hidden, beta=beta,
                  likelihood=likelihood, activation="tanh", seed=seed)
    rng = np.random.default_rng(seed)
    vq.flat_params[...] += 0.3 * rng.standard_normal(vq.flat_params.size)
    return vq


def _x(vq, rng, b):
    if vq.likelihood_name == "bernoulli":
        return rng.uniform(0, 1, (b, vq.x_dim))
    return rng.standard_normal((b, vq.x_dim))


@FAST
@given(b=st.integers(1, 4), x_dim=st.integers(1, 6), M=st.integers(1, 3), d=st.integers(1, 3),
       K=st.integers(1, 6), hidden=st.sampled_from([(), (5,), (4, 3)]),
       part=st.sampled_from(["loss", "recon", "codebook", "commitment"]),
       likelihood=st.sampled_from(["bernoulli", "gaussian", "gaussian_learned"]),
       beta=st.floats(0.1, 2.0), seed=seeds)
def test_vqvae_checkable_gradients(b, x_dim, M, d, K, hidden, part, likelihood, beta, seed):
    """Decoder (every part), codebook (codebook term), encoder (commitment term): exact."""
    vq = _vq(seed, x_dim, M, d, K, hidden, likelihood, beta)
    x = _x(vq, np.random.default_rng(seed + 1), b)
    assume(vq.quantization_margin(x) > 1e-3)          # no assignment switches within h
    report = check_model(vq, x, part=part)
    assert report.passed, str(report)
    assert {r[0] for r in report.rows} == set(vq.checkable_params(part))


def test_straight_through_is_a_surrogate_not_the_derivative():
    """Where no assignment switches, the true encoder gradient of the whole loss is that of
    (1 + beta) ||z_e - e||^2 alone (the reconstruction does not move with z_e), while the
    surrogate carries the decoder's gradient at z_q instead of the codebook term's part."""
    rng = np.random.default_rng(0)
    vq = _vq(0, hidden=(4,))
    x = _x(vq, rng, 3)
    assert vq.quantization_margin(x) > 1e-3
    enc = [n for n in vq.params if n.startswith("enc.")]

    def surrogate(part):
        vq.forward(x, part=part)
        vq.backward()
        return np.concatenate([vq.grads[n].ravel() for n in enc])

    def true(part):
        return np.concatenate([numerical_grad(lambda: vq.forward(x, part=part).loss,
                                              vq.params[n]).ravel() for n in enc])

    g_true = true("loss")
    np.testing.assert_allclose(g_true, true("codebook") + true("commitment"), atol=1e-8)
    np.testing.assert_allclose(np.abs(true("recon")), 0, atol=1e-9)   # recon is flat in z_e
    g_sur = surrogate("loss")
    np.testing.assert_allclose(g_sur, surrogate("recon") + surrogate("commitment"), rtol=1e-12)
    # the deviation is exactly: straight-through copy minus the codebook term's encoder part
    np.testing.assert_allclose(g_sur - g_true, surrogate("recon") - true("codebook"), atol=1e-8)
    assert rel_error(g_sur, g_true) > 0.05           # and it is far from a rounding error


def test_true_codebook_gradient_includes_the_reconstruction():
    """The codebook's true derivative of the whole loss also has the decoder's gradient at
    z_q; the surrogate keeps only the codebook term, so check_model leaves it out for part='loss'."""
    rng = np.random.default_rng(1)
    vq = _vq(1)
    x = _x(vq, rng, 3)
    vq.forward(x)
    vq.backward()
    sur = vq.grads["codebook"].copy()
    true = numerical_grad(lambda: vq.forward(x).loss, vq.params["codebook"])
    assert "codebook" not in vq.checkable_params("loss")
    assert rel_error(sur, true) > 0.05


def test_kl_is_log_k_and_terms():
    rng = np.random.default_rng(2)
    vq = _vq(2, M=3, K=7, beta=0.5)
    x = _x(vq, rng, 4)
    t = vq.forward(x)
    assert t.kl == pytest.approx(3 * np.log(7))
    assert t.elbo == pytest.approx(-(t.recon + t.kl))
    assert t.loss == pytest.approx(t.recon + t.codebook + t.commitment)
    assert t.commitment == pytest.approx(0.5 * t.codebook)
    d2 = np.sum((t.z_e[:, :, None, :] - vq.params["codebook"]) ** 2, axis=-1)
    np.testing.assert_array_equal(t.indices, d2.argmin(axis=-1))
    np.testing.assert_array_equal(t.z_q, vq.params["codebook"][t.indices])


def test_perplexity_prior_and_sampling():
    assert perplexity(np.array([0, 1, 2, 3]), 8) == pytest.approx(4.0)
    assert perplexity(np.zeros(10, int), 8) == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    vq = _vq(3, M=2, K=4)
    x = _x(vq, rng, 50)
    prior = vq.fit_prior(x)
    assert prior.shape == (2, 4)
    np.testing.assert_allclose(prior.sum(axis=1), 1)
    assert vq.sample(5, prior=prior, rng=np.random.default_rng(0)).shape == (5, 6)
    onehot = np.zeros((2, 4))
    onehot[:, 1] = 1
    s = vq.sample(3, prior=onehot, rng=np.random.default_rng(0))
    np.testing.assert_allclose(s, vq.decode_mean(np.ones((3, 2), int)))
    vq.init_codebook(x, rng=np.random.default_rng(0))
    assert vq.reconstruct(x).shape == x.shape


def test_vqvae_contract_and_errors():
    vq = nv.VQVAE(6, n_codes=2, code_dim=3, codebook_size=4, hidden=(5,), beta=0.3)
    assert vq.params["codebook"].shape == (4, 3)
    again = nv.VQVAE.from_config(vq.config)
    assert again.flat_params.size == vq.flat_params.size and again.beta == 0.3
    cp = vq.copy()
    np.testing.assert_array_equal(cp.flat_params, vq.flat_params)
    with pytest.raises(ValueError, match="part"):
        vq.forward(np.full((1, 6), 0.5), part="kl")
    with pytest.raises(ValueError, match="beta"):
        nv.VQVAE(6, beta=-1)
    with pytest.raises(ValueError, match=r"shape \(B, 6\)"):
        vq.forward(np.zeros((2, 5)))
    with pytest.raises(RuntimeError, match="forward"):
        nv.VQVAE(6).backward()
