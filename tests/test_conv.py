"""The convolutional VAE: its whole gradient through the sampling step (eps fixed, float64),
the options it shares with the VAE, dtypes, its record, bad shapes and its memory estimate."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae.conv import ConvVAE, conv_run_bytes
from numpyvae.gradcheck import check_model

from _helpers import FEW, PASS, model_x, randomize_biases, seeds

SMALL = dict(image_shape=(1, 7, 7), z_dim=3, channels=(2, 3), kernel_size=3, stride=2, padding=1)


@pytest.mark.parametrize("likelihood, activation, kwargs", [
    ("bernoulli", "relu", dict(k=2)),
    ("gaussian", "tanh", dict(k=3, beta=0.5, kl="mc")),
    ("gaussian_learned", "softplus", dict(k=2, objective="iwae")),
    ("bernoulli", "tanh", dict(k=2, objective="iwae")),
])
def test_whole_gradient_through_the_sampling_step(likelihood, activation, kwargs):
    m = ConvVAE(**SMALL, likelihood=likelihood, activation=activation, seed=1)
    rng = np.random.default_rng(2)
    randomize_biases(m, rng, 0.1)
    rep = check_model(m, model_x(m, rng, 3), **kwargs)
    names = [r[0] for r in rep.rows]
    assert "enc.conv0.W" in names and "dec.out.W" in names and "(all, random direction)" in names
    assert rep.max_error < PASS, str(rep)


@FEW
@given(seed=seeds, side=st.integers(5, 9), k=st.integers(2, 4), stride=st.integers(1, 3),
       n_classes=st.sampled_from([None, 3]))
def test_gradient_on_drawn_shapes(seed, side, k, stride, n_classes):
    """Odd and even sides, overlapping and disjoint windows, with and without labels."""
    m = ConvVAE((2, side, side), 2, channels=(2,), kernel_size=k, stride=stride,
                padding=min(1, k - 1), activation="tanh", seed=seed % 1000, n_classes=n_classes)
    rng = np.random.default_rng(seed)
    y = None if n_classes is None else rng.integers(0, 3, 2)
    rep = check_model(m, model_x(m, rng, 2), k=2, y=y)
    assert rep.max_error < PASS, str(rep)


def test_a_wrong_decoder_backward_is_caught(monkeypatch):
    """The whole-model check sees an error in one transposed convolution's dx."""
    from numpyvae import conv_layers
    m = ConvVAE(**SMALL, seed=0)
    x = model_x(m, np.random.default_rng(0), 2)
    assert check_model(m, x).passed
    real = conv_layers._convT_backward_fast
    monkeypatch.setattr(conv_layers, "_convT_backward_fast",
                        lambda *a: None if a[-1] is False else 2 * real(*a))
    rep = check_model(m, x)
    assert rep.errors()["dec.in.W"] > 1e-3 and not rep.passed


def test_one_sample_iwae_is_the_monte_carlo_elbo():
    """At K = 1 the IWAE bound and the ELBO with the Monte Carlo KL are one number and one
    gradient (note 10, eq. (10.3)); the closed-form KL gives another gradient."""
    m = ConvVAE(**SMALL, seed=3)
    rng = np.random.default_rng(0)
    x = model_x(m, rng, 4)
    eps = rng.standard_normal((1, 4, 3))
    elbo = m.forward(x, eps=eps, kl="mc").loss
    m.backward()
    g_elbo = m.flat_grads.copy()
    iwae = m.forward(x, eps=eps, objective="iwae").loss
    m.backward()
    assert elbo == pytest.approx(iwae, rel=1e-12)
    np.testing.assert_allclose(m.flat_grads, g_elbo, rtol=1e-10, atol=1e-12)
    m.forward(x, eps=eps, kl="closed")
    m.backward()
    assert np.max(np.abs(m.flat_grads - g_elbo)) > 1e-6


def test_registered_kind_and_the_model_contract():
    from numpyvae import _registry
    m = ConvVAE(**SMALL, n_classes=2, seed=1)
    assert _registry.MODELS["conv"] is ConvVAE and m.config["model"] == "conv"
    assert type(_registry.from_config(m.config)) is ConvVAE
    assert m.needs_labels and set(m.train_options) >= {"k", "beta", "kl"}


def test_float32_stays_float32_and_agrees_with_float64():
    m = ConvVAE(**SMALL, seed=0, dtype=np.float32)
    x = model_x(m, np.random.default_rng(0), 3)
    eps = np.random.default_rng(1).standard_normal((2, 3, 3))
    t = m.forward(x.astype(np.float32), eps=eps)
    m.backward()
    assert m.flat_params.dtype == m.flat_grads.dtype == t.mu.dtype == np.float32
    assert m.decode(np.zeros((2, 3))).dtype == np.float32
    m64 = m.astype(np.float64)
    assert m64.forward(x, eps=eps).loss == pytest.approx(t.loss, rel=1e-5)


def test_images_and_flat_rows_are_the_same_input():
    m = ConvVAE(**SMALL, seed=0)
    x = model_x(m, np.random.default_rng(0), 2)
    eps = np.zeros((1, 2, 3))
    assert m.loss(x, eps=eps) == m.loss(x.reshape(2, 1, 7, 7), eps=eps)
    assert m.reconstruct(x).shape == (2, 49) and m.sample(5).shape == (5, 49)
    assert m.filters().shape == (2, 1, 3, 3)


def test_config_rebuilds_the_same_model_and_copies_are_independent():
    m = ConvVAE(**SMALL, likelihood="gaussian_learned", n_classes=2, seed=4)
    again = ConvVAE.from_config(m.config)
    np.testing.assert_array_equal(again.flat_params, m.flat_params)
    assert m.config["model"] == "conv" and again.config == m.config
    c = m.copy()
    c.flat_params[0] += 1
    assert c.flat_params[0] != m.flat_params[0]
    state = m.state_dict()
    c.load_state_dict(state)
    np.testing.assert_array_equal(c.flat_params, m.flat_params)


def test_mnist_architecture_sizes():
    m = ConvVAE((1, 28, 28), 20, channels=(32, 64), seed=0)
    assert m.enc.linears[1].output_shape(14, 14) == (7, 7)
    assert m.params["enc.mu.W"].shape == (64 * 7 * 7, 20)
    assert m.params["dec.convT0.W"].shape == (64, 32, 4, 4)
    assert m.params["dec.out.W"].shape == (32, 1, 4, 4)
    assert m.decode(np.zeros((3, 20))).shape == (3, 784)
    frey = ConvVAE((1, 28, 20), 5, channels=(8, 16), likelihood="gaussian", seed=0)
    assert frey.decode(np.zeros((2, 5))).shape == (2, 560)


def _one_line(e, *words):
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_bad_settings_get_one_line():
    with pytest.raises(ValueError) as e:
        ConvVAE((1, 4, 4), 2, channels=(4, 8, 16, 32))
    _one_line(e, "image_shape (1, 4, 4) is too small", "convolution 2")
    with pytest.raises(ValueError) as e:
        ConvVAE((1, 28), 2)
    _one_line(e, "image_shape must be (C, H, W)")
    with pytest.raises(ValueError) as e:
        ConvVAE((1, 28, 27), 2, channels=(4,))
    _one_line(e, "output_padding per axis")
    with pytest.raises(ValueError) as e:
        ConvVAE(channels=())
    _one_line(e, "channels")
    m = ConvVAE(**SMALL)
    with pytest.raises(ValueError) as e:
        m.forward(np.zeros((2, 50)))
    _one_line(e, "x must have shape (B, 49) or (B,) + (1, 7, 7)", "(2, 50)")
    with pytest.raises(ValueError) as e:
        m.forward(np.zeros((2, 2, 7, 7)))
    _one_line(e, "x must have shape")


def test_memory_estimate_covers_a_measured_step():
    """conv_run_bytes over-estimates the peak of a real training step, by less than 4x."""
    cfg = dict(image_shape=(1, 28, 28), z_dim=8, channels=(8, 16))
    m = ConvVAE(**cfg, seed=0, dtype=np.float32)
    x = (np.random.default_rng(0).random((32, 784)) > 0.5).astype(np.float32)
    tracemalloc.start()
    m2 = ConvVAE(**cfg, seed=0, dtype=np.float32)
    m2.forward(x, k=2)
    m2.backward()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    est = conv_run_bytes(**cfg, batch_size=32, k=2, eval_batch=32)
    params = 6 * m.flat_params.size * 4
    assert est >= peak + params - 2 * m.flat_params.size * 4, (est, peak)
    assert est < 4 * (peak + params), (est, peak)
    assert conv_run_bytes(**cfg, batch_size=64, k=2, eval_batch=32) > est


def test_figures_include_the_first_layers_filters(tmp_path):
    from numpyvae.training import plots
    m = ConvVAE(**SMALL, seed=0)
    x = model_x(m, np.random.default_rng(0), 12)
    paths = plots.make_figures(m, x, tmp_path, image_shape=(7, 7))
    assert set(paths) >= {"filters", "samples", "reconstructions"}
    assert (tmp_path / "filters.png").stat().st_size > 1000
    with pytest.raises(ValueError) as e:
        plots.plot_filters(np.zeros((3, 3)), tmp_path / "bad.png")
    _one_line(e, "W: expected (C_out, C_in, k, k)")
