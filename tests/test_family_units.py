"""The model family's small units (the course kit grades them): the IWAE bound's backward,
the quantizer's straight-through backward, checked against central differences."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from numpyvae.gradcheck import PASS, numerical_grad, rel_error
from numpyvae.model import iwae_bound, iwae_bound_backward
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
