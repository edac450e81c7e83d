"""Figures: each plotting function writes a readable PNG atomically; helper maths is right."""
from __future__ import annotations

import math
import os

import matplotlib.image as mpimg
import numpy as np
import pytest

import numpyvae as nv
from numpyvae.training import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    path = os.fspath(path)
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_SIGNATURE, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    # not a blank canvas
    assert float(img[..., :3].std()) > 0.01


def _history(n=5, beta_warm=False):
    e = list(range(1, n + 1))
    base = [200.0 / k + 90 for k in e]
    return {
        "epoch": e, "step": [10 * k for k in e],
        "beta": [min(1.0, k / 3) for k in e] if beta_warm else [1.0] * n,
        "train_loss": [b - 3 for b in base], "train_neg_elbo": base,
        "train_recon": [b - 20 for b in base], "train_kl": [20.0] * n,
        "val_neg_elbo": [b + 2 for b in base], "val_recon": [b - 18 for b in base], "val_kl": [20.0] * n,
    }


@pytest.mark.slow
def test_loss_curves(tmp_path):
    for warm in (False, True):
        p = plots.plot_loss_curves(_history(beta_warm=warm), tmp_path / f"loss{warm}.png")
        assert p == str(tmp_path / f"loss{warm}.png")
        assert_png(p)
    assert_png(plots.plot_loss_curves(_history(n=1), tmp_path / "one.png"))
    with pytest.raises(ValueError):
        plots.plot_loss_curves({"epoch": []}, tmp_path / "empty.png")


def test_reconstruction_and_sample_grids(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 28 * 20))
    assert_png(plots.plot_reconstructions(x, 1 - x, (28, 20), tmp_path / "rec.png", n=16))
    assert_png(plots.plot_samples(rng.random((30, 784)), (28, 28), tmp_path / "samples.png"))
    with pytest.raises(ValueError, match="x_rec"):
        plots.plot_reconstructions(x, x[:3], (28, 20), tmp_path / "bad.png")


def test_image_grid_layout():
    imgs = np.arange(5 * 6, dtype=float).reshape(5, 6) / 30
    g = plots.image_grid(imgs, (2, 3), ncol=3, pad=1)
    assert g.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert np.allclose(g[0:2, 4:7], imgs[1].reshape(2, 3))
    assert np.allclose(g[3:5, 8:11], 1.0)  # empty sixth cell is padding
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(imgs, (3, 3), ncol=2)


@pytest.mark.slow
def test_latent_scatter_for_each_dimension(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 300)
    for z in (1, 2, 5):
        mu = rng.standard_normal((300, z)) + labels[:, None] * 0.3
        assert_png(plots.plot_latent(mu, labels, tmp_path / f"lat{z}.png"))
    assert_png(plots.plot_latent(rng.standard_normal((50, 3)), None, tmp_path / "nolabels.png"))


def test_pca_2d_explained_variance():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2000, 4)) * np.array([5.0, 2.0, 0.5, 0.1])
    proj, ev = plots.pca_2d(x)
    assert proj.shape == (2000, 2)
    total = 25 + 4 + 0.25 + 0.01
    assert np.allclose(ev, [25 / total, 4 / total], atol=0.02)
    assert np.allclose(proj.var(axis=0), [25, 4], rtol=0.1)


def test_norm_ppf_inverts_the_normal_cdf():
    p = np.array([1e-6, 0.001, 0.05, 0.3, 0.5, 0.7, 0.95, 0.975, 0.999, 1 - 1e-6])
    z = plots.norm_ppf(p)
    cdf = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z])
    assert np.allclose(cdf, p, rtol=1e-10, atol=1e-15)
    assert abs(z[7] - 1.959963984540054) < 1e-9
    assert z[4] == 0.0
    q = np.array([0.01, 0.2, 0.4])
    assert np.allclose(plots.norm_ppf(q), -plots.norm_ppf(1 - q), atol=1e-9)
    with pytest.raises(ValueError):
        plots.norm_ppf([0.0, 0.5])


def test_manifold_grid_orientation_and_figure(tmp_path):
    z = plots.manifold_z(5)
    assert z.shape == (25, 2)
    assert np.all(np.diff(z[:5, 0]) > 0)  # z1 increases along a row
    assert np.all(np.diff(z[::5, 1]) < 0)  # z2 decreases down the rows
    calls = []

    def decode(zz):
        calls.append(zz.shape)
        return np.tile(1 / (1 + np.exp(-zz[:, :1])), (1, 28 * 28))

    assert_png(plots.plot_manifold(decode, (28, 28), tmp_path / "man.png", n=6))
    assert calls == [(36, 2)]


def test_toy_scatter(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 2))
    assert_png(plots.plot_toy(x, 0.8 * x, rng.standard_normal((200, 2)), tmp_path / "toy.png",
                              labels=rng.integers(0, 3, 200)))
    with pytest.raises(ValueError, match="samples"):
        plots.plot_toy(x, x, rng.standard_normal((10, 3)), tmp_path / "bad.png")


def test_figures_are_written_atomically(tmp_path):
    plots.plot_samples(np.random.default_rng(0).random((4, 16)), (4, 4), tmp_path / "s.png")
    plots.plot_samples(np.random.default_rng(1).random((4, 16)), (4, 4), tmp_path / "s.png")
    assert os.listdir(tmp_path) == ["s.png"]


@pytest.mark.slow
def test_make_figures_from_models(tmp_path):
    rng = np.random.default_rng(4)
    img_vae = nv.VAE(x_dim=36, z_dim=2, hidden=(8,), seed=0, dtype=np.float32)
    x = rng.random((60, 36)).astype(np.float32)
    paths = plots.make_figures(img_vae, x, tmp_path / "img", history=_history(), y_val=rng.integers(0, 3, 60),
                               image_shape=(6, 6), manifold_n=5)
    assert set(paths) == {"loss_curves", "reconstructions", "samples", "latent", "manifold"}
    for p in paths.values():
        assert_png(p)
    rng_state = img_vae.rng.bit_generator.state
    toy_vae = nv.VAE(x_dim=2, z_dim=3, hidden=(8,), likelihood="gaussian", seed=0)
    paths = plots.make_figures(toy_vae, rng.standard_normal((80, 2)), tmp_path / "toy")
    assert set(paths) == {"toy", "latent"}
    for p in paths.values():
        assert_png(p)
    assert img_vae.rng.bit_generator.state == rng_state  # figures never consume vae.rng


def test_a_huge_first_epoch_does_not_flatten_the_loss_curves(tmp_path):
    # Frey Face in Gaussian-decoder nats: epoch 1 near 3500, then around -400 ... -500
    n = 40
    later = [-400.0 - 100.0 * (1 - np.exp(-k / 8)) for k in range(1, n)]
    assert plots.curve_limits([3518.0] + later) is not None
    lo, hi = plots.curve_limits([3518.0] + later)
    assert lo < min(later) and max(later) < hi < 0  # the later epochs fill the axis; epoch 1 is off it
    assert hi - lo < 1.2 * (max(later) - min(later))
    assert plots.curve_limits([200.0 / k + 90 for k in range(1, 20)]) is None  # an ordinary curve: untouched
    assert plots.curve_limits([3518.0, -400.0]) is None  # too short to judge
    # one panel, two curves: the validation curve's first value is near the rest, the training one's is not
    lo2, hi2 = plots.curve_limits([3518.0] + later, [-300.0] + later)
    assert lo2 < min(later) and -300.0 < hi2 < 0
    hist = {"epoch": list(range(1, n + 1))}
    for split, shift in (("train", 0.0), ("val", 10.0)):
        hist[f"{split}_neg_elbo"] = [3518.0 + shift] + [v + shift for v in later]
        hist[f"{split}_recon"] = [3500.0 + shift] + [v - 10 + shift for v in later]
        hist[f"{split}_kl"] = [18.0] + [10.0] * (n - 1)
    assert_png(plots.plot_loss_curves(hist, tmp_path / "frey_loss.png"))
