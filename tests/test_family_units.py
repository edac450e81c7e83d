"""The model family's small units (the course kit grades them): the IWAE bound and its
backward, the quantizer's straight-through backward, checked against central differences; and
the family subclass, which must give the plain model's numbers on the plain case."""
from __future__ import annotations

import numpy as np
import pytest
from _helpers import model_x, randomize_biases
from hypothesis import given, settings, strategies as st

from numpyvae import VAE, FamilyVAE

from numpyvae.gradcheck import PASS, numerical_grad, rel_error
from numpyvae.iwae import iwae_bound, iwae_bound_backward, log_mean_exp
from numpyvae.vqvae import VQVAE, nearest_codes, quantize_backward, vq_surrogate_loss


@settings(max_examples=15, deadline=None)
@given(K=st.integers(1, 6), B=st.integers(1, 4), offset=st.sampled_from([0.0, -800.0]),
       seed=st.integers(0, 2**16))
def test_iwae_bound_backward_is_its_derivative(K, B, offset, seed):
    rng = np.random.default_rng(seed)
    log_w, g = offset + 2 * rng.standard_normal((K, B)), rng.standard_normal(B)
    num = numerical_grad(lambda: float(np.sum(g * iwae_bound(log_w))), log_w)
    got = iwae_bound_backward(g, log_w)
    assert np.all(np.isfinite(got)) and rel_error(got, num) < PASS
    if offset == 0.0:       # the plain formula where exp does not underflow
        plain = np.log(np.mean(np.exp(log_w), axis=0))
        assert np.allclose(iwae_bound(log_w), plain, rtol=1e-12, atol=1e-12)
    assert not np.allclose(got, g / K) or K == 1        # softmax, not the ELBO's uniform 1/K


def test_iwae_bound_is_minus_infinity_where_every_weight_is_zero():
    """Note 08, eq. (8.4): an example whose K weights are all 0 (log w = -inf) has the bound
    -inf, not the NaN of -inf - (-inf); the other examples keep their numbers."""
    log_w = np.array([[-np.inf, 0.0, -2.0], [-np.inf, -1.0, -np.inf]])
    with np.errstate(all="raise"):
        got = iwae_bound(log_w)
    assert got[0] == -np.inf
    assert got[1] == pytest.approx(np.log((1 + np.exp(-1.0)) / 2), rel=1e-15)
    assert got[2] == pytest.approx(-2.0 - np.log(2), rel=1e-15)
    assert np.array_equal(log_mean_exp(log_w, axis=0), got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_weight_threshold_is_eps_squared_of_the_largest(dtype):
    """A weight just below eps^2 of the largest gets exactly 0 in the backward; one just above
    keeps its softmax share."""
    tol = float(np.finfo(dtype).eps) ** 2
    below, above = np.log(tol) - 0.5, np.log(tol) + 0.5
    log_w = np.array([[0.0, 0.0], [below, above]], dtype=dtype)
    d = iwae_bound_backward(np.ones(2, dtype=dtype), log_w)
    assert d[1, 0] == 0
    assert d[1, 1] == pytest.approx(np.exp(above) / (1 + np.exp(above)), rel=1e-5)
    assert d[0, 0] == 1 and d[0, 1] == pytest.approx(1 / (1 + np.exp(above)), rel=1e-6)


@pytest.mark.parametrize("kl", ["closed", "mc"])
@pytest.mark.parametrize("beta", [1.0, 0.3])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian_learned"])
def test_the_family_equals_the_plain_model_on_the_plain_case(kl, beta, likelihood):
    """FamilyVAE with a diagonal posterior, no labels and the ELBO: the same parameters, loss,
    per-example terms and every gradient as VAE, through its own general path."""
    rng = np.random.default_rng(4)
    plain = VAE(7, 3, hidden=(6, 5), likelihood=likelihood, activation="tanh", seed=4)
    randomize_biases(plain, rng)
    fam = FamilyVAE(7, 3, hidden=(6, 5), likelihood=likelihood, activation="tanh", seed=4)
    fam.flat_params[...] = plain.flat_params
    assert list(fam.params) == list(plain.params)
    x = model_x(plain, rng, 5)
    eps = rng.standard_normal((3, 5, 3))
    t_plain = plain.forward(x, eps=eps, beta=beta, kl=kl)
    plain.backward()
    t_fam = fam.forward(x, eps=eps, beta=beta, kl=kl)
    fam.backward()
    assert t_fam.loss == pytest.approx(t_plain.loss, rel=1e-12)
    for name in ("elbo_per_example", "recon_per_example", "kl_per_example"):
        np.testing.assert_allclose(getattr(t_fam, name), getattr(t_plain, name), rtol=1e-12)
    for name in plain.grads:
        np.testing.assert_allclose(fam.grads[name], plain.grads[name], rtol=1e-10, atol=1e-13,
                                   err_msg=name)
    np.testing.assert_allclose(fam.log_weights(x, eps), plain.log_weights(x, eps), rtol=1e-12)


def test_bad_eps_is_refused_in_one_line():
    vae = VAE(4, 2, hidden=(3,), seed=0)
    x = np.full((2, 4), 0.5)
    eps = np.zeros((2, 2, 2))
    for model in (vae, FamilyVAE(4, 2, hidden=(3,), seed=0)):
        with pytest.raises(ValueError, match="eps contains NaN"):
            model.forward(x, eps=np.where(eps == 0, np.nan, eps))
        with pytest.raises(ValueError, match=r"k is 3 but eps holds 2 sample"):
            model.forward(x, eps=eps, k=3)
        assert model.forward(x, eps=eps, k=2).eps.shape[0] == 2


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 4), M=st.integers(1, 3), d=st.integers(1, 3), K=st.integers(2, 5),
       beta=st.sampled_from([0.0, 0.25, 2.0]), seed=st.integers(0, 2**16))
def test_quantize_backward_is_the_surrogates_derivative(B, M, d, K, beta, seed):
    rng = np.random.default_rng(seed)
    dz_q, z_e, E = (rng.standard_normal((B, M, d)), rng.standard_normal((B, M, d)),
                    rng.standard_normal((K, d)))
    sg_z_e, sg_E = z_e.copy(), E.copy()

    def f():
        return vq_surrogate_loss(dz_q, z_e, E, sg_z_e, sg_E, beta)
    dz_e, dE = quantize_backward(dz_q, z_e, E, beta)
    assert rel_error(dz_e, numerical_grad(f, z_e)) < PASS
    assert rel_error(dE, numerical_grad(f, E)) < PASS
    idx, z_q = nearest_codes(z_e, E)
    assert np.isclose(f(), np.sum(dz_q * z_q) + (1 + beta) * np.sum((z_e - z_q) ** 2) / B)


def test_vqvae_codebook_gradient_is_quantize_backwards():
    """VQVAE.backward writes quantize_backward's dcodebook for the parts that move the codebook."""
    m = VQVAE(6, n_codes=2, code_dim=2, codebook_size=3, hidden=(), seed=1)
    x = np.random.default_rng(0).random((4, 6))
    for part in ("loss", "codebook", "commitment"):
        m.forward(x, part=part)
        m.backward()
        z_e = m._cache["z_e"]
        dz_q = np.zeros_like(z_e)
        if part == "loss":
            douts = [-dd / 4 for dd in m.lik.grad(x, *m._cache["outs"])]
            dz_q = m._decode_backward(douts).reshape(z_e.shape)
        beta = m.beta if part in ("loss", "commitment") else 0.0
        _, dE = quantize_backward(dz_q, z_e, m.codebook.W, beta)
        want = dE if part in ("loss", "codebook") else np.zeros_like(dE)
        assert np.allclose(m.grads["codebook"], want, rtol=1e-12, atol=1e-14)
