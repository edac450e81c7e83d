"""The disentanglement scores on codes built by hand: a copy of each factor scores near 1,
noise near 0 (the FactorVAE score: its chance level), a rotation of two factors in between;
and the traversal decodes what it says."""
from __future__ import annotations

import numpy as np
import pytest

from numpyvae.data import shapes
from numpyvae.theory import disentangle as dis

N = 20000


def _copy(f):
    """Each factor's value in its own code dimension, standardised (dSprites' spreads)."""
    return np.stack(shapes.factor_values(f), 1) / np.array([0.8, 0.15, 1.8, 0.3, 0.3])


def _rotate(theta=np.pi / 4):
    R = np.eye(5)
    R[3:, 3:] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    return R


@pytest.fixture(scope="module")
def factors():
    return shapes.sample_factors(N, np.random.default_rng(0))


def test_mutual_information_of_a_copy_is_the_entropy_and_of_independent_arrays_zero():
    rng = np.random.default_rng(1)
    a = rng.integers(4, size=100000)
    assert dis.mutual_information(a, a) == pytest.approx(np.log(4), rel=1e-3)
    assert dis.mutual_information(a, rng.integers(4, size=100000)) < 1e-3
    assert dis.mutual_information(a, 3 - a) == pytest.approx(np.log(4), rel=1e-3)   # relabelling


def test_mig_copy_noise_and_mixed(factors):
    copy = _copy(factors)
    score, gaps, info = dis.mig(copy, factors)
    assert info.shape == (5, 5)
    # 20 bins resolve shape and scale; rotation (40 values) and x, y (32) lose what the bins merge:
    # the gap is then H(binned code) / H(factor), below 1 for a perfect code (a known failure)
    np.testing.assert_allclose(gaps[:2], 1.0, atol=0.01)
    bins = dis.discretize(copy, 20)
    for k in (2, 3, 4):
        assert gaps[k] == pytest.approx(dis.mutual_information(bins[:, k], bins[:, k])
                                        / dis.mutual_information(factors[:, k], factors[:, k]), abs=0.01)
        assert gaps[k] < 0.9
    np.testing.assert_allclose(dis.mig(copy, factors, n_bins=64)[1], 1.0, atol=0.01)   # finer bins: all 1
    noise = dis.mig(np.random.default_rng(2).standard_normal((N, 5)), factors)[0]
    mixed = dis.mig(copy @ _rotate().T, factors)[0]
    assert noise < 0.01 and 0.3 < mixed < score - 0.2


def test_mig_ignores_extra_noise_dimensions(factors):
    more = np.c_[_copy(factors), 0.5 * np.random.default_rng(3).standard_normal((N, 5))]
    assert dis.mig(more, factors, n_bins=64)[0] > 0.98


def test_dci_copy_noise_and_mixed(factors):
    copy = _copy(factors)
    d, c, R = dis.dci(copy, factors)
    assert d > 0.99 and c > 0.99 and R.shape == (5, 5)
    dn, cn, _ = dis.dci(np.random.default_rng(4).standard_normal((N, 5)), factors)
    dm, cm, _ = dis.dci(copy @ _rotate().T, factors)
    assert dn < 0.3 and cn < 0.3
    assert dn + 0.2 < dm < 0.95 and cn + 0.2 < cm < 0.95


def test_factor_vae_score_copy_noise_and_mixed():
    rng = np.random.default_rng(5)
    copy, _ = dis.factor_vae_score(_copy, shapes.sample_factors, rng, n_votes=300)
    noise, _ = dis.factor_vae_score(lambda f: rng.standard_normal((len(f), 5)), shapes.sample_factors, rng,
                                    n_votes=300)
    mixed, _ = dis.factor_vae_score(lambda f: _copy(f) @ _rotate().T, shapes.sample_factors, rng, n_votes=300)
    assert copy == 1.0
    assert noise < 0.35                       # chance is 1/5 (a majority vote of noise)
    assert noise + 0.2 < mixed < 0.95         # x and y share two dimensions: those votes split


def test_factor_vae_score_skips_collapsed_dimensions():
    """A dimension that never varies (a collapsed latent) must not win every vote."""
    rng = np.random.default_rng(6)
    rep = lambda f: np.c_[_copy(f), np.zeros(len(f))]      # noqa: E731
    score, votes = dis.factor_vae_score(rep, shapes.sample_factors, rng, n_votes=200)
    assert score == 1.0 and votes[5].sum() == 0


def test_traverse_sets_one_dimension_per_row():
    z_ref = np.array([0.5, -1.0, 2.0])
    values = np.array([-1.0, 0.0, 3.0])
    out = dis.traverse(lambda z: z.copy(), z_ref, values)     # an identity "decoder"
    assert out.shape == (3, 3, 3)
    for j in range(3):
        for t, v in enumerate(values):
            expected = z_ref.copy()
            expected[j] = v
            np.testing.assert_array_equal(out[j, t], expected)


def test_traversal_files_are_written(tmp_path):
    imgs = np.random.default_rng(7).uniform(size=(3, 5, 64))
    png = dis.save_traversal_png(imgs, (8, 8), tmp_path / "t.png", values=np.linspace(-2, 2, 5))
    gif = dis.save_traversal_gif(imgs, (8, 8), tmp_path / "t.gif")
    from PIL import Image
    with Image.open(gif) as im:
        assert im.n_frames == 5 + 3        # forward, then back without repeating the ends
    assert png.stat().st_size > 1000
