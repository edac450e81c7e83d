"""Finite-difference checks of every layer's backward (float64, rel error < gradcheck.PASS)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyvae as nv
from numpyvae import layers as L
from numpyvae.gradcheck import check_function, check_layer, rel_error

from _helpers import ACTS, FAST, KINKED, PASS, assume_no_kinks, away_from_zero, batch, dims, seeds

ACT_CLASSES = {"relu": L.ReLU, "leaky_relu": L.LeakyReLU, "tanh": L.Tanh,
               "sigmoid": L.Sigmoid, "softplus": L.Softplus, "identity": L.Identity}


@FAST
@given(b=batch, d_in=dims, d_out=dims, seed=seeds, init=st.sampled_from(["he", "glorot"]))
def test_linear_gradcheck(b, d_in, d_out, seed, init):
    rng = np.random.default_rng(seed)
    lin = L.Linear(d_in, d_out, rng, init=init)
    lin.b[...] = rng.standard_normal(d_out)
    x = rng.standard_normal((b, d_in))
    rep = check_layer(lin, x, seed=seed)
    assert [r[0] for r in rep.rows] == ["x", "W", "b"]
    assert rep.passed, str(rep)
    assert rep.max_error < PASS


@pytest.mark.parametrize("name", ACTS)
@FAST
@given(b=batch, d=dims, seed=seeds, scale=st.floats(0.1, 3.0))
def test_activation_gradcheck(name, b, d, seed, scale):
    rng = np.random.default_rng(seed)
    # |x| <= 3: deep in the saturated tails of tanh/sigmoid the derivative is so small
    # (1 - tanh(6)^2 ~ 2e-5) that float64 round-off alone exceeds a 1e-6 *relative* error
    x = rng.uniform(-scale, scale, (b, d))
    if name in KINKED:
        x = away_from_zero(x)          # |x| >= 1e-2: central differences never straddle the kink
    layer = nv.layers.make_activation(name)
    assert isinstance(layer, ACT_CLASSES[name])
    rep = check_layer(layer, x, seed=seed)
    assert [r[0] for r in rep.rows] == ["x"]
    assert rep.max_error < PASS, str(rep)


def _mlp_gradcheck(mlp, x, g):
    """dx and every W, b of an MLP against central differences of sum(forward(x) * g)."""
    def f():
        return float(np.sum(mlp.forward(x) * g))

    mlp.forward(x)
    dx = mlp.backward(g)
    grads = {f"{i}.{k}": v.copy() for i, lin in enumerate(mlp.linears)
             for k, v in lin.grads().items()}
    rep = check_function(f, dx.copy(), x, name="x")
    for name, p in mlp.params().items():
        rep.rows += check_function(f, grads[name], p, name=name).rows
    return rep


@pytest.mark.parametrize("activation", ACTS)
@FAST
@given(b=batch, sizes=st.lists(dims, min_size=2, max_size=4), seed=seeds)
def test_mlp_gradcheck(activation, b, sizes, seed):
    rng = np.random.default_rng(seed)
    mlp = L.MLP(tuple(sizes), activation, rng)
    for lin in mlp.linears:
        lin.b[...] = 0.5 * rng.standard_normal(lin.b.shape)
    x = rng.standard_normal((b, sizes[0]))
    g = rng.standard_normal((b, sizes[-1]))
    mlp.forward(x)
    if activation in KINKED:
        assume_no_kinks(mlp.linears)
    rep = _mlp_gradcheck(mlp, x, g)
    assert len(rep.rows) == 1 + 2 * (len(sizes) - 1)
    assert rep.max_error < PASS, str(rep)


def test_check_layer_accepts_mlp():
    """The contract says check_layer works for any forward/backward object with optional
    params()/grads(); an MLP (which has params()) must therefore be checkable directly."""
    rng = np.random.default_rng(0)
    mlp = L.MLP((3, 4, 2), "tanh", rng)
    rep = check_layer(mlp, rng.standard_normal((2, 3)))
    assert {r[0] for r in rep.rows} == {"x", "0.W", "0.b", "1.W", "1.b"}
    assert rep.passed, str(rep)


def test_mlp_of_one_size_is_identity():
    mlp = L.MLP((5,), "relu", np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((3, 5))
    assert mlp.linears == [] and mlp.params() == {}
    np.testing.assert_array_equal(mlp.forward(x), x)
    g = np.ones((3, 5))
    np.testing.assert_array_equal(mlp.backward(g), g)


def test_linear_backward_overwrites_not_accumulates():
    rng = np.random.default_rng(0)
    lin = L.Linear(4, 3, rng)
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    lin.forward(x)
    lin.backward(g)
    dW1, db1 = lin.dW.copy(), lin.db.copy()
    lin.forward(x)
    lin.backward(g)
    np.testing.assert_array_equal(lin.dW, dW1)
    np.testing.assert_array_equal(lin.db, db1)
    np.testing.assert_allclose(dW1, x.T @ g)


def test_linear_input_grad_false_returns_none_and_still_fills_params():
    rng = np.random.default_rng(0)
    lin = L.Linear(4, 3, rng)
    lin.input_grad = False
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    lin.forward(x)
    assert lin.backward(g) is None
    np.testing.assert_allclose(lin.db, g.sum(0))
    rep = check_layer(lin, x)
    assert [r[0] for r in rep.rows] == ["W", "b"] and rep.passed


def test_linear_init_scales():
    rng = np.random.default_rng(0)
    he = L.Linear(400, 300, rng, init="he")
    gl = L.Linear(400, 300, rng, init="glorot")
    assert he.W.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert gl.W.std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)
    assert np.all(he.b == 0)


def test_bad_names_raise():
    with pytest.raises(ValueError, match="activation"):
        L.make_activation("swish")
    with pytest.raises(ValueError, match="init"):
        L.Linear(2, 2, np.random.default_rng(0), init="xavier")


def test_sigmoid_and_softplus_are_stable_at_extremes():
    x = np.array([[-800.0, -30.0, 0.0, 30.0, 800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is harmless
        s = L.Sigmoid().forward(x)
        sp = L.Softplus().forward(x)
    # against independent stable forms: sigmoid = exp(-log(1 + e^-x)), softplus = logaddexp(0, x)
    np.testing.assert_allclose(s, np.exp(-np.logaddexp(0.0, -x)), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(sp, np.logaddexp(0.0, x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(sp[0, [0, 2, 4]], [0.0, np.log(2), 800.0])


# ---------------------------------------------------------------- mutations
class _TanhTimesTwo(L.Tanh):
    def backward(self, dy):
        return 2 * super().backward(dy)


class _SigmoidDroppedTerm(L.Sigmoid):
    def backward(self, dy):
        return dy * self.y          # dropped the (1 - y) factor


class _LeakyNoSlope(L.LeakyReLU):
    def backward(self, dy):
        return dy * self.pos        # dropped the slope branch: negative side gets 0


@pytest.mark.parametrize("cls", [_TanhTimesTwo, _SigmoidDroppedTerm, _LeakyNoSlope])
def test_activation_mutations_are_caught(cls):
    rng = np.random.default_rng(3)
    x = away_from_zero(rng.standard_normal((4, 6)))
    rep = check_layer(cls(), x)
    assert rep.max_error >= 1e-3
    assert not rep.passed


def test_mlp_mutation_is_caught(monkeypatch):
    """An MLP whose hidden activation backward is off by 2 fails the MLP check."""
    rng = np.random.default_rng(1)
    mlp = L.MLP((5, 4, 3), "tanh", rng)
    x, g = rng.standard_normal((3, 5)), rng.standard_normal((3, 3))
    assert _mlp_gradcheck(mlp, x, g).passed
    monkeypatch.setattr(L.Tanh, "backward", lambda self, dy: 2 * dy * (1 - self.y * self.y))
    rep = _mlp_gradcheck(mlp, x, g)
    assert rep.max_error >= 1e-3 and not rep.passed
    assert rel_error(np.ones(3), 2 * np.ones(3)) == 0.5
