"""The "uniform" initialisation (PyTorch nn.Linear's default) as an option of Linear and VAE."""
from __future__ import annotations

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.layers import MLP, Linear


def test_linear_uniform_draws_w_and_b_within_one_over_sqrt_fan_in():
    lin = Linear(400, 300, np.random.default_rng(0), init="uniform")
    bound = 1 / np.sqrt(400)
    for a in (lin.W, lin.b):
        assert np.all(np.abs(a) <= bound)
        assert np.abs(a).max() > 0.95 * bound          # fills the interval
    assert lin.W.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)   # U(-a, a): std a/sqrt(3)
    assert abs(lin.b.mean()) < 0.2 * bound and lin.b.std() > 0.4 * bound   # biases are not zero
    he = Linear(400, 300, np.random.default_rng(0), init="he")
    assert he.W.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02) and not he.b.any()
    with pytest.raises(ValueError, match="init.*uniform"):
        Linear(3, 2, np.random.default_rng(0), init="xavier")


def test_mlp_and_vae_pass_the_init_through_and_keep_it_in_the_config():
    mlp = MLP((20, 400), "relu", np.random.default_rng(0), init="uniform")
    assert np.abs(mlp.linears[0].W).max() <= 1 / np.sqrt(20) and mlp.linears[0].b.any()
    vae = nv.VAE(30, 4, hidden=(16,), seed=1, init="uniform")
    for name, W in vae.params.items():
        fan_in = vae.params[name.replace(".b", ".W")].shape[0] if name.endswith(".b") else W.shape[0]
        assert np.all(np.abs(W) <= 1 / np.sqrt(fan_in)), name
    assert vae.params["enc.mu.b"].any() and vae.config["init"] == "uniform"
    again = nv.VAE.from_config(vae.config)
    np.testing.assert_array_equal(again.flat_params, vae.flat_params)
    assert nv.VAE(30, 4, hidden=(16,), seed=1).config["init"] == "uniform"   # the default
    he = nv.VAE(30, 4, hidden=(16,), seed=1, init="he")
    assert he.config["init"] == "he" and not he.params["enc.mu.b"].any()
    with pytest.raises(ValueError, match="init"):
        nv.VAE(30, 4, init="torch")


def test_uniform_init_gradients_check():
    from numpyvae.gradcheck import check_model
    vae = nv.VAE(7, 3, hidden=(5,), seed=2, init="uniform")
    x = (np.random.default_rng(0).uniform(size=(4, 7)) < 0.5).astype(float)
    assert check_model(vae, x).passed
