"""Conditional VAE (note 10, eqs. 10.9-10.10): the label joins the encoder's input and z."""
from __future__ import annotations

import numpy as np
import pytest
from _helpers import FAST, model_x, seeds
from hypothesis import given
from hypothesis import strategies as st

import numpyvae as nv
from numpyvae.gradcheck import check_model


@FAST
@given(b=st.integers(1, 5), x_dim=st.integers(1, 6), z_dim=st.integers(1, 4), c=st.integers(1, 4),
       k=st.integers(1, 3), hidden=st.sampled_from([(), (5,), (4, 3)]),
       objective=st.sampled_from(["elbo", "iwae"]), posterior=st.sampled_from(["diag", "full"]),
       likelihood=st.sampled_from(["bernoulli", "gaussian"]), seed=seeds)
def test_cvae_gradcheck(b, x_dim, z_dim, c, k, hidden, objective, posterior, likelihood, seed):
    vae = nv.FamilyVAE(x_dim, z_dim, hidden=hidden, likelihood=likelihood, activation="tanh",
                 n_classes=c, posterior=posterior, seed=seed)
    rng = np.random.default_rng(seed)
    vae.flat_params[...] += 0.3 * rng.standard_normal(vae.flat_params.size)
    x = model_x(vae, rng, b)
    y = rng.integers(0, c, b)
    report = check_model(vae, x, eps=rng.standard_normal((k, b, z_dim)), y=y, objective=objective,
                         kl="mc" if objective == "iwae" else "closed")
    assert report.passed, str(report)


def test_label_changes_the_output_and_the_gradient_ignores_it():
    """The label enters the first layers (its rows of W get gradient), but it is data: the
    loss is not differentiated with respect to y, and changing y changes the decoder's output."""
    rng = np.random.default_rng(1)
    vae = nv.FamilyVAE(6, 2, hidden=(), n_classes=3, seed=1)
    vae.flat_params[...] += 0.5 * rng.standard_normal(vae.flat_params.size)
    z = rng.standard_normal((4, 2))
    assert not np.allclose(vae.decode(z, y=0), vae.decode(z, y=2))
    x = model_x(vae, rng, 4)
    y = np.array([0, 0, 1, 1])
    vae.forward(x, eps=rng.standard_normal((1, 4, 2)), y=y)
    vae.backward()
    # the rows of the first layers' W that read label 2 (absent from the batch) get no gradient
    assert np.all(vae.grads["dec.out.W"][2 + 2] == 0)
    assert np.all(vae.grads["enc.mu.W"][6 + 2] == 0)
    assert np.any(vae.grads["dec.out.W"][2 + 0] != 0)


def test_cvae_label_errors_and_shapes():
    vae = nv.FamilyVAE(5, 2, hidden=(4,), n_classes=3)
    x = np.full((2, 5), 0.5)
    with pytest.raises(ValueError, match="needs the labels y"):
        vae.forward(x)
    with pytest.raises(ValueError, match="0..2"):
        vae.forward(x, y=[0, 3])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        vae.forward(x, y=[0])
    with pytest.raises(TypeError, match="integer"):
        vae.forward(x, y=[0.5, 1])
    with pytest.raises(ValueError, match="n_classes"):
        nv.FamilyVAE(5, 2).forward(x, y=[0, 1])
    assert vae.reconstruct(x, y=[0, 1]).shape == (2, 5)
    assert vae.sample(3, y=2).shape == (3, 5)
    assert vae.decode_mean(np.zeros((4, 3, 2)), y=1).shape == (4, 3, 5)
    again = nv.VAE.from_config(vae.config)
    assert again.n_classes == 3
