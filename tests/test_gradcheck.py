"""The gradient checker itself: it must measure correctly and must catch wrong backwards."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numpyvae as nv
from numpyvae import gradcheck as gc
from numpyvae.layers import Linear

from _helpers import FAST, PASS, batch, dims, seeds


# --------------------------------------------------------------- numerical_grad
@FAST
@given(n=dims, seed=seeds)
def test_numerical_grad_quadratic(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    bvec = rng.standard_normal(n)
    x = rng.standard_normal(n)
    x0 = x.copy()
    g = gc.numerical_grad(lambda: 0.5 * x @ A @ x + bvec @ x, x)
    # central differences are exact for a quadratic up to round-off
    assert gc.rel_error(g, 0.5 * (A + A.T) @ x + bvec) < 1e-8
    np.testing.assert_array_equal(x, x0)            # x restored after perturbation


@FAST
@given(shape=st.tuples(batch, dims), seed=seeds)
def test_numerical_grad_sin(shape, seed):
    x = np.random.default_rng(seed).uniform(-3, 3, shape)
    g = gc.numerical_grad(lambda: np.sum(np.sin(x)), x)
    assert g.shape == x.shape
    np.testing.assert_allclose(g, np.cos(x), atol=1e-9)
    # a larger step has a visibly larger truncation error (h^2 f'''/6): the step matters
    g_big = gc.numerical_grad(lambda: np.sum(np.sin(x)), x, h=1e-1)
    assert np.max(np.abs(g_big - np.cos(x))) > 1e-5


def test_numerical_grad_index_and_input_checks():
    x = np.linspace(-1, 1, 6)
    g = gc.numerical_grad(lambda: np.sum(x ** 3), x, index=[1, 4])
    assert np.isnan(g[[0, 2, 3, 5]]).all()
    np.testing.assert_allclose(g[[1, 4]], 3 * x[[1, 4]] ** 2, atol=1e-9)
    with pytest.raises(TypeError, match="float64"):
        gc.numerical_grad(lambda: 0.0, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        xf = np.zeros((4, 4))[:, ::2]
        gc.numerical_grad(lambda: 0.0, xf)


# ------------------------------------------------------------------- rel_error
def test_rel_error_formula():
    assert gc.rel_error([1.0, 2.0], [1.0, 2.5]) == pytest.approx(0.5 / 2.5)
    assert gc.rel_error([2.0], [1.0]) == pytest.approx(0.5)         # factor 2 -> 0.5
    assert gc.rel_error([-3.0, 1.0], [-3.0, 1.0]) == 0.0
    # both zero: finite and 0, not nan
    e = gc.rel_error(np.zeros(4), np.zeros(4))
    assert np.isfinite(e) and e == 0.0
    # tiny but different: the 1e-12 floor keeps it finite
    assert gc.rel_error([1e-20], [3e-20]) == pytest.approx(2e-20 / 1e-12)
    # near-zero entries do not blow the error up (an elementwise ratio would give 0.5)
    assert gc.rel_error([1e-20, 1.0], [2e-20, 1.0]) < 1e-15
    assert gc.rel_error(np.zeros((0,)), np.zeros((0,))) == 0.0
    with pytest.raises(ValueError, match="shape"):
        gc.rel_error(np.zeros(3), np.zeros(4))


@FAST
@given(n=dims, seed=seeds, scale=st.floats(1e-6, 1e6))
def test_rel_error_scale_invariant_and_symmetric(n, seed, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    e = gc.rel_error(a, b)
    assert e == pytest.approx(gc.rel_error(b, a))
    assert e == pytest.approx(gc.rel_error(scale * a, scale * b), rel=1e-9)
    assert 0 <= e <= 2


# ----------------------------------------------------------- directional_check
def test_directional_check():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 20)
    x0 = x.copy()

    def f():
        return np.sum(np.sin(x) * x)

    good = np.sin(x) + x * np.cos(x)
    assert gc.directional_check(f, x, good) < PASS
    np.testing.assert_array_equal(x, x0)
    assert gc.directional_check(f, x, 2 * good) == pytest.approx(0.5, rel=1e-4)
    assert gc.directional_check(f, x, np.sin(x)) >= 1e-3        # dropped a term
    bad = good.copy()
    bad[3] += 1.0                                                # one wrong coordinate
    assert gc.directional_check(f, x, bad, rng=np.random.default_rng(1)) >= 1e-3


def test_directional_check_on_a_direction_almost_orthogonal_to_the_gradient():
    """<g, u> near zero: the round-off of the difference quotient is measured against the
    typical size of <g, u>, not against the near-zero value (which failed a right gradient)."""
    n = 50
    u = np.random.default_rng(0).standard_normal(n)     # the direction the check draws
    u /= np.linalg.norm(u)
    rng = np.random.default_rng(5)
    c = rng.standard_normal(n)
    c -= (c @ u) * u                                      # <c, u> ~ 1e-17
    x = rng.uniform(-1, 1, n)

    def f():
        return 100.0 + c @ x                              # |f| ~ 100: round-off ~ 1e-9 at h = 1e-5

    assert gc.directional_check(f, x, c) < PASS
    bad = c.copy()
    bad[3] += 1.0                                         # one wrong coordinate still fails
    assert gc.directional_check(f, x, bad) >= 1e-3


def test_check_function_report():
    x = np.array([0.3, -1.2, 2.0])
    rep = gc.check_function(lambda: np.sum(np.exp(x)), np.exp(x), x, name="x")
    assert rep.passed and rep.rows[0][:3] == ("x", (3,), 3)
    rep = gc.check_function(lambda: np.sum(np.exp(x)), np.exp(x) + 0.01, x)
    assert not rep.passed


# ------------------------------------------------------------ check_layer flags
class _LinearTimes2(Linear):
    def backward(self, dy):
        dx = super().backward(dy)
        self.dW *= 2
        return dx


class _LinearDbPart(Linear):
    def backward(self, dy):
        dx = super().backward(dy)
        self.db[...] = dy[:1].sum(axis=0)         # ignores all but the first example
        return dx


class _LinearDxNoW(Linear):
    def backward(self, dy):
        super().backward(dy)
        return dy.copy()                          # omits the W^T factor (square layer)


class _LinearDWTransposed(Linear):
    def backward(self, dy):
        dx = super().backward(dy)
        self.dW[...] = self.dW.T.copy()           # square layer: shapes still agree
        return dx


@pytest.mark.parametrize("cls, bad_row", [(_LinearTimes2, "W"), (_LinearDbPart, "b"),
                                          (_LinearDxNoW, "x"), (_LinearDWTransposed, "W")])
@FAST
@given(b=st.integers(2, 8), d=st.integers(2, 8), seed=seeds)
def test_check_layer_flags_wrong_linear(cls, bad_row, b, d, seed):
    rng = np.random.default_rng(seed)
    good, bad = Linear(d, d, rng), cls(d, d, np.random.default_rng(0))
    bad.W[...] = good.W
    x = rng.standard_normal((b, d))
    if cls is _LinearDWTransposed:
        # a transposed dW is only visible when x^T g is not (nearly) symmetric;
        # g is the upstream gradient check_layer draws from the same seed
        G = x.T @ np.random.default_rng(seed).standard_normal((b, d))
        assume(np.max(np.abs(G - G.T)) >= 1e-2 * np.max(np.abs(G)))
    assert gc.check_layer(good, x, seed=seed).passed
    rep = gc.check_layer(bad, x, seed=seed)
    errs = rep.errors()
    assert not rep.passed
    assert errs[bad_row] >= 1e-3, str(rep)
    if cls is _LinearTimes2:
        assert errs["W"] == pytest.approx(0.5, rel=1e-6)


# ------------------------------------------------------------------ check_model
def _small_vae(likelihood="bernoulli", hidden=(5,), activation="tanh", dtype=np.float64, seed=0):
    vae = nv.VAE(x_dim=6, z_dim=3, hidden=hidden, likelihood=likelihood,
                 activation=activation, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for name, p in vae.params.items():
        if name.endswith(".b"):
            p[...] = 0.3 * rng.standard_normal(p.shape)
    x = rng.uniform(0, 1, (4, 6)).astype(dtype)
    return vae, x


def test_check_model_report_rows_and_table():
    vae, x = _small_vae(hidden=(5, 4))
    rep = gc.check_model(vae, x, k=2)
    names = [r[0] for r in rep.rows]
    assert names[:-1] == list(vae.params)            # one row per parameter, in order
    assert names[-1] == "(all, random direction)"
    assert len(rep.rows) == len(vae.params) + 1
    for (name, shape, n, _err, _ok) in rep.rows[:-1]:
        assert shape == vae.params[name].shape and n == vae.params[name].size
    assert rep.passed and rep.max_error < PASS
    assert set(rep.errors()) == set(names)
    text = str(rep)
    lines = text.splitlines()
    assert len(lines) == len(rep.rows) + 3
    assert "parameter" in lines[0] and "max rel err" in lines[0]
    for name in vae.params:
        assert any(line.startswith(name + " ") for line in lines)
    assert text.count("pass") >= len(rep.rows) and "FAIL" not in text
    assert "all passed" in lines[-1]
    assert repr(rep) == text


def test_check_model_flags_wrong_model_gradients(monkeypatch):
    vae, x = _small_vae()
    assert gc.check_model(vae, x).passed
    # KL gradient off by a factor 2: only the encoder can be wrong
    real = nv.model.kl_normal_std_grad
    monkeypatch.setattr(nv.model, "kl_normal_std_grad",
                        lambda mu, lv: tuple(2 * g for g in real(mu, lv)))
    rep = gc.check_model(vae, x)
    errs = rep.errors()
    assert not rep.passed and "FAIL" in str(rep) and "SOME FAILED" in str(rep)
    assert errs["enc.mu.W"] >= 1e-3 and errs["enc.logvar.b"] >= 1e-3
    assert errs["dec.out.W"] < PASS                   # the decoder is untouched
    monkeypatch.undo()
    # dropped the eps-path term of dlogvar
    real_rb = nv.model.reparameterize_backward
    monkeypatch.setattr(nv.model, "reparameterize_backward",
                        lambda dz, lv, eps: (real_rb(dz, lv, eps)[0], np.zeros_like(lv)))
    errs = gc.check_model(vae, x).errors()
    assert errs["enc.logvar.W"] >= 1e-3 and errs["enc.mu.W"] < PASS


def test_check_model_flags_transposed_linear_gradient(monkeypatch):
    """A transposed dW inside the model (square hidden layer) is caught."""
    vae = nv.VAE(x_dim=5, z_dim=2, hidden=(5, 5), activation="tanh", seed=1)
    x = np.random.default_rng(0).uniform(0, 1, (3, 5))
    real = Linear.backward

    def transposed(self, dy):
        dx = real(self, dy)
        if self.dW.shape[0] == self.dW.shape[1]:
            self.dW[...] = self.dW.T.copy()
        return dx

    monkeypatch.setattr(Linear, "backward", transposed)
    rep = gc.check_model(vae, x)
    assert not rep.passed and rep.errors()["enc.1.W"] >= 1e-3


def _spy_numerical_grad(monkeypatch):
    calls = []
    real = gc.numerical_grad

    def spy(f, p, h=gc.H, index=None):
        calls.append((p.size, None if index is None else tuple(index)))
        return real(f, p, h, index)

    monkeypatch.setattr(gc, "numerical_grad", spy)
    return calls


def test_check_model_per_param_samples_a_fixed_seeded_number_per_parameter(monkeypatch):
    vae, x = _small_vae(hidden=(7,))
    calls = _spy_numerical_grad(monkeypatch)
    rep = gc.check_model(vae, x, per_param=3)
    assert rep.passed
    for (name, _shape, n, _err, _ok) in rep.rows[:-1]:
        assert n == min(3, vae.params[name].size)
    # only 3 entries are perturbed in every parameter with more than 3 entries
    assert len(calls) == len(vae.params)
    assert all((size <= 3 and idx is None) or len(idx) == 3 for size, idx in calls)
    # seeded: the same call checks the same coordinates; another seed, others
    first = list(calls)
    calls.clear()
    gc.check_model(vae, x, per_param=3)
    assert calls == first
    calls.clear()
    gc.check_model(vae, x, per_param=3, seed=1)
    assert calls != first
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="per_param must be a positive integer"):
            gc.check_model(vae, x, per_param=bad)


@pytest.mark.parametrize("planted", ["decoder", "encoder"])
def test_check_model_per_param_catches_a_planted_factor_2(monkeypatch, planted):
    vae, x = _small_vae(hidden=(7,))
    if planted == "decoder":   # factor-2 likelihood gradient: every parameter is wrong
        real = nv.likelihoods.bernoulli_log_prob_grad
        monkeypatch.setattr(nv.likelihoods, "bernoulli_log_prob_grad",
                            lambda x_, logits: 2 * real(x_, logits))
        wrong = ["dec.out.W", "dec.out.b", "dec.0.W"]
    else:                      # factor-2 KL gradient: only the encoder is wrong
        real = nv.model.kl_normal_std_grad
        monkeypatch.setattr(nv.model, "kl_normal_std_grad",
                            lambda mu, lv: tuple(2 * g for g in real(mu, lv)))
        wrong = ["enc.mu.W", "enc.logvar.W", "enc.0.W"]
    rep = gc.check_model(vae, x, per_param=2)
    assert not rep.passed and "SOME FAILED" in str(rep)
    errs = rep.errors()
    assert all(errs[name] >= 1e-3 for name in wrong), str(rep)
    assert all(n <= 2 for (_name, _shape, n, _err, _ok) in rep.rows)


def test_check_model_shows_a_progress_bar_only_when_slow(capsys, monkeypatch):
    vae, x = _small_vae(hidden=(7,))
    n_coords = vae.flat_params.size
    gc.check_model(vae, x)                               # below PROGRESS_ABOVE: quiet
    assert "check_model" not in capsys.readouterr().err
    gc.check_model(vae, x, progress=True)                # forced: a bar on stderr
    err = capsys.readouterr().err
    assert "check_model" in err and f"/{n_coords}" in err
    monkeypatch.setattr(gc, "PROGRESS_ABOVE", n_coords - 1)  # "slow": shown by default
    gc.check_model(vae, x)
    assert f"/{n_coords}" in capsys.readouterr().err
    gc.check_model(vae, x, per_param=2)                  # sampled: few coordinates, quiet
    assert "check_model" not in capsys.readouterr().err
    gc.check_model(vae, x, progress=False)
    assert capsys.readouterr().err == ""


def test_check_model_float32_runs_on_float64_copy():
    vae, x = _small_vae(dtype=np.float32)
    before = vae.flat_params.copy()
    x0 = x.copy()
    rng_state = vae.rng.bit_generator.state
    rep = gc.check_model(vae, x, k=2, kl="mc")
    assert rep.passed, str(rep)                  # float64 copy: the 1e-6 bound holds
    assert vae.dtype == np.float32 and vae.flat_params.dtype == np.float32
    np.testing.assert_array_equal(vae.flat_params, before)
    np.testing.assert_array_equal(x, x0)
    assert x.dtype == np.float32
    assert vae.rng.bit_generator.state == rng_state
    # a float32 finite-difference check would be hopeless: the copy is what makes it pass
    assert isinstance(vae.copy(np.float64).flat_params[0], np.float64)
