"""The sprites with known factors: the dSprites grid, one image per factor row, each factor visible."""
from __future__ import annotations

import numpy as np
import pytest

from numpyvae.data import load_dataset, shapes


def test_the_factor_grid_is_dsprites():
    assert shapes.FACTOR_NAMES == ("shape", "scale", "rotation", "x", "y")
    assert shapes.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert np.prod(shapes.FACTOR_SIZES) == 737280
    f = np.array([[2, 5, 39, 31, 31], [0, 0, 0, 0, 0]])
    shape, scale, angle, x, y = shapes.factor_values(f)
    np.testing.assert_allclose(scale, [1.0, 0.5])
    np.testing.assert_allclose(angle, [2 * np.pi * 39 / 40, 0.0])
    np.testing.assert_allclose(x, [1.0, 0.0])


def test_render_is_binary_deterministic_and_every_factor_changes_the_image():
    base = np.array([[2, 3, 5, 10, 20]])
    img = shapes.render(base, 32)
    assert img.shape == (1, 1024) and img.dtype == np.float32
    assert set(np.unique(img)) == {0.0, 1.0}
    np.testing.assert_array_equal(img, shapes.render(base, 32))
    for k in range(5):
        other = base.copy()
        other[0, k] = (other[0, k] + 1) % shapes.FACTOR_SIZES[k]
        assert np.any(shapes.render(other, 32) != img), shapes.FACTOR_NAMES[k]


def test_position_moves_the_mass_and_scale_grows_it():
    f = np.array([[0, 5, 0, 0, 16], [0, 5, 0, 31, 16], [0, 0, 0, 16, 16], [0, 5, 0, 16, 16]])
    im = shapes.render(f, 32).reshape(4, 32, 32)

    def col(a):
        return np.sum(a.sum(0) * np.arange(32)) / a.sum()

    assert col(im[0]) < 12 < 20 < col(im[1])                # x = 0 left, x = 1 right
    assert 2.5 < im[3].sum() / im[2].sum() < 5.5             # area ~ scale^2 = 4


def test_the_square_repeats_every_quarter_turn_and_the_heart_does_not():
    sq = shapes.render(np.array([[0, 5, 0, 16, 16], [0, 5, 10, 16, 16]]), 64)
    heart = shapes.render(np.array([[2, 5, 0, 16, 16], [2, 5, 10, 16, 16]]), 64)
    assert np.mean(sq[0] != sq[1]) < 0.002
    assert np.mean(heart[0] != heart[1]) > 0.01


def test_render_refuses_bad_factors_with_one_line():
    with pytest.raises(ValueError, match=r"factors must have shape \(N, 5\)"):
        shapes.render(np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="indices below"):
        shapes.render(np.array([[3, 0, 0, 0, 0]]))


def test_load_dataset_shapes_splits_and_labels():
    ds = load_dataset("shapes", seed=1)
    assert ds.x_train.shape == (20000, 1024) and ds.x_val.shape == (2000, 1024) and ds.x_test.shape == (2000, 1024)
    assert ds.image_shape == (32, 32)
    d = shapes.load_shapes(1)
    np.testing.assert_array_equal(ds.y_train, d["f_train"][:, 0])
    np.testing.assert_array_equal(ds.x_val, d["x_val"])
    assert not np.array_equal(ds.x_train[:100], ds.x_val[:100])
    with pytest.raises(ValueError, match="already binary"):
        load_dataset("shapes", binarize="fixed")


def test_cli_trains_on_shapes_without_a_data_directory(tmp_path, monkeypatch, capsys):
    from numpyvae.cli import main
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "shapes", "--out", str(out), "--epochs", "1", "--z-dim", "2",
               "--hidden", "16", "--max-train", "200", "--no-progress"])
    assert rc == 0 and (out / "checkpoint.npz").is_file()
    assert "on shapes" in capsys.readouterr().out
    assert main(["train", "--dataset", "shapes", "--out", str(tmp_path / "r2"), "--binarize", "fixed",
                 "--no-progress"]) == 2
    assert "shapes is already binary" in capsys.readouterr().err
