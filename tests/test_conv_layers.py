"""Conv2d and ConvTranspose2d: finite differences, the loop form against the im2col form,
the adjoint identity, PyTorch's definitions (when installed), dtypes and bad shapes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae import conv_layers as C
from numpyvae.gradcheck import check_layer
from numpyvae.layers import Conv2d, ConvTranspose2d

from _helpers import FAST, PASS, seeds


@st.composite
def conv_settings(draw, max_side=9):
    """(B, C_in, C_out, H, W, k, stride, padding): kernels 1-5, strides 1-3, padding 0-2,
    odd and even sides, overlapping (stride < k) and non-overlapping windows."""
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, min(2, k - 1) if k > 1 else 0))   # padding >= k only pads zeros
    lo = max(1, k - 2 * p)
    h = draw(st.integers(lo, max(lo, max_side)))
    w = draw(st.integers(lo, max(lo, max_side)))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)),
            h, w, k, s, p)


def _conv(setting, seed, init="uniform", dtype=np.float64):
    B, ci, co, h, w, k, s, p = setting
    rng = np.random.default_rng(seed)
    layer = Conv2d(ci, co, k, stride=s, padding=p, rng=rng, init=init, dtype=dtype)
    return layer, rng.standard_normal((B, ci, h, w)).astype(dtype)


def _convT(setting, seed, op=0, dtype=np.float64):
    B, ci, co, h, w, k, s, p = setting
    rng = np.random.default_rng(seed)
    op = min(op, s - 1)
    if (h - 1) * s - 2 * p + k + op < 1 or (w - 1) * s - 2 * p + k + op < 1:
        p = 0                                                   # padding may not crop everything
    layer = ConvTranspose2d(ci, co, k, stride=s, padding=p, output_padding=op, rng=rng,
                            dtype=dtype)
    return layer, rng.standard_normal((B, ci, h, w)).astype(dtype)


# ------------------------------------------------------------------ finite differences
@FAST
@given(setting=conv_settings(), seed=seeds)
def test_conv2d_gradcheck(setting, seed):
    layer, x = _conv(setting, seed)
    rep = check_layer(layer, x, seed=seed)
    assert [r[0] for r in rep.rows] == ["x", "W", "b"]
    assert rep.max_error < PASS, str(rep)


@FAST
@given(setting=conv_settings(max_side=6), op=st.integers(0, 2), seed=seeds)
def test_conv_transpose2d_gradcheck(setting, op, seed):
    layer, x = _convT(setting, seed, op)
    rep = check_layer(layer, x, seed=seed)
    assert [r[0] for r in rep.rows] == ["x", "W", "b"]
    assert rep.max_error < PASS, str(rep)


@pytest.mark.parametrize("k, s", [(3, 1), (4, 2), (5, 3), (2, 2), (3, 3), (1, 2)])
def test_gradcheck_overlapping_and_disjoint_windows(k, s):
    """Windows overlap when stride < k (their gradients add up) and tile or skip pixels when
    stride >= k (skipped pixels get zero gradient); both layers, odd sides, several channels."""
    setting = (2, 3, 2, 7, 9, k, s, 1 if k > 1 else 0)
    for layer, x in (_conv(setting, 1), _convT(setting, 2, op=s - 1)):
        rep = check_layer(layer, x, seed=3)
        assert rep.max_error < PASS, (layer, str(rep))


def test_skipped_pixels_get_zero_gradient():
    """stride 3 with k = 2 never reads rows 2, 5, 8 of a 9-row image: dx is exactly 0 there."""
    layer, x = _conv((1, 1, 1, 9, 9, 2, 3, 0), 0)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 3, 3)))
    assert np.all(dx[:, :, 2::3, :] == 0) and np.all(dx[:, :, :, 2::3] == 0)
    assert np.all(dx[:, :, 0::3, 0::3] != 0)


# ------------------------------------------------------------------ the two forms agree
@FAST
@given(setting=conv_settings(), seed=seeds)
def test_conv2d_loop_equals_im2col(setting, seed):
    layer, x = _conv(setting, seed)
    W, b, s, p = layer.W, layer.b, layer.stride, layer.padding
    y = layer.forward(x)
    np.testing.assert_allclose(y, C.conv2d_loop(x, W, b, s, p), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(C.conv2d(x, W, b, s, p), y, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(dy)
    for a, e in zip((dx, layer.dW, layer.db), C.conv2d_backward_loop(dy, x, W, s, p)):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
    for a, e in zip((dx, layer.dW, layer.db), C.conv2d_backward(dy, x, W, s, p)):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


@FAST
@given(setting=conv_settings(max_side=6), op=st.integers(0, 2), seed=seeds)
def test_conv_transpose2d_loop_equals_im2col(setting, op, seed):
    layer, x = _convT(setting, seed, op)
    a = (layer.stride, layer.padding, layer.output_padding)
    y = layer.forward(x)
    np.testing.assert_allclose(y, C.conv_transpose2d_loop(x, layer.W, layer.b, *a),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(C.conv_transpose2d(x, layer.W, layer.b, *a), y, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(dy)
    for got, e in zip((dx, layer.dW, layer.db), C.conv_transpose2d_backward_loop(dy, x, layer.W, *a)):
        np.testing.assert_allclose(got, e, rtol=1e-12, atol=1e-12)
    for got, e in zip((dx, layer.dW, layer.db), C.conv_transpose2d_backward(dy, x, layer.W, *a)):
        np.testing.assert_allclose(got, e, rtol=1e-12, atol=1e-12)


@FAST
@given(setting=conv_settings(), seed=seeds)
def test_channels_last_im2col_and_col2im_equal_the_plain_ones(setting, seed):
    """The layers' fast form holds the same numbers as the plain form, columns reordered
    from (c, u, v) to (u, v, c); its col2im is the same adjoint."""
    B, ci, _, h, w, k, s, p = setting
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((B, ci, h + 2 * p, w + 2 * p))
    oh, ow = C.conv_output_size(h, k, s, p), C.conv_output_size(w, k, s, p)
    plain = C.im2col(xp, k, s, oh, ow)
    fast = C.im2col_nhwc(xp.transpose(0, 2, 3, 1), k, s, oh, ow)
    reorder = fast.reshape(-1, k, k, ci).transpose(0, 3, 1, 2).reshape(plain.shape)
    np.testing.assert_array_equal(reorder, plain)
    cols = rng.standard_normal(plain.shape)
    back = C.col2im(cols, xp.shape, k, s, oh, ow)
    cols_fast = cols.reshape(-1, ci, k, k).transpose(0, 2, 3, 1).reshape(fast.shape)
    back_fast = C.col2im_nhwc(cols_fast, xp.transpose(0, 2, 3, 1).shape, k, s, oh, ow)
    np.testing.assert_allclose(back_fast.transpose(0, 3, 1, 2), back, rtol=1e-13, atol=1e-13)
    assert np.sum(plain * cols) == pytest.approx(np.sum(xp * back), rel=1e-10, abs=1e-10)


# ------------------------------------------------------------------ the adjoint
@FAST
@given(setting=conv_settings(), seed=seeds)
def test_transposed_convolution_is_the_adjoint(setting, seed):
    """<conv2d(x), y> = <x, conv_transpose2d(y)> for the same W, biases zero (eq. 14.7);
    output_padding picks, of the input sizes a strided convolution maps to one size, the one of x."""
    B, ci, co, h, w, k, s, p = setting
    h = w                                                       # one output_padding for both axes
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, ci, h, w))
    W = rng.standard_normal((co, ci, k, k))
    y = rng.standard_normal((B, co) + (C.conv_output_size(h, k, s, p),) * 2)
    op = (h + 2 * p - k) % s
    xt = C.conv_transpose2d(y, W, np.zeros(ci), s, p, op)
    assert xt.shape == x.shape
    lhs = np.sum(C.conv2d(x, W, np.zeros(co), s, p) * y)
    rhs = np.sum(x * xt)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)
    # the backward of the convolution with respect to x is the same map
    np.testing.assert_allclose(C.conv2d_backward(y, x, W, s, p)[0], xt, rtol=1e-12, atol=1e-12)


def test_adjoint_check_catches_a_wrong_transpose():
    """A transposed convolution that forgets to flip nothing but reads W[:, :, ::-1, ::-1]
    (the 'true convolution' mix-up) breaks the identity."""
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    y = rng.standard_normal((1, 3, 3, 3))
    lhs = np.sum(C.conv2d(x, W, np.zeros(3), 2, 1) * y)
    good = np.sum(x * C.conv_transpose2d(y, W, np.zeros(2), 2, 1, 1))
    flipped = np.sum(x * C.conv_transpose2d(y, W[:, :, ::-1, ::-1].copy(), np.zeros(2), 2, 1, 1))
    assert lhs == pytest.approx(good, rel=1e-12)
    assert abs(lhs - flipped) > 1e-3 * abs(lhs)


# ------------------------------------------------------------------ PyTorch's definitions
@pytest.mark.parametrize("k, s, p, op", [(3, 1, 1, 0), (4, 2, 1, 1), (5, 3, 2, 2), (2, 2, 0, 0)])
def test_matches_pytorch(k, s, p, op):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(k + s)
    x = rng.standard_normal((2, 3, 9, 7))
    conv = Conv2d(3, 4, k, stride=s, padding=p, rng=rng)
    tx = torch.tensor(x, requires_grad=True)
    tW, tb = torch.tensor(conv.W, requires_grad=True), torch.tensor(conv.b, requires_grad=True)
    ty = F.conv2d(tx, tW, tb, stride=s, padding=p)
    y = conv.forward(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx = conv.backward(dy)
    for a, t in ((dx, tx), (conv.dW, tW), (conv.db, tb)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-12, atol=1e-12)

    convT = ConvTranspose2d(3, 2, k, stride=s, padding=p, output_padding=min(op, s - 1), rng=rng)
    tx = torch.tensor(x, requires_grad=True)
    tW, tb = torch.tensor(convT.W, requires_grad=True), torch.tensor(convT.b, requires_grad=True)
    ty = F.conv_transpose2d(tx, tW, tb, stride=s, padding=p, output_padding=convT.output_padding)
    y = convT.forward(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx = convT.backward(dy)
    for a, t in ((dx, tx), (convT.dW, tW), (convT.db, tb)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ dtypes and bookkeeping
@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
def test_float32_stays_float32(cls):
    rng = np.random.default_rng(0)
    layer = cls(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float32)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == layer.dW.dtype == layer.db.dtype == np.float32
    ref = cls(2, 3, 3, stride=2, padding=1, rng=np.random.default_rng(0))
    np.testing.assert_allclose(y, ref.forward(x.astype(np.float64)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
def test_backward_overwrites_and_input_grad_false(cls):
    rng = np.random.default_rng(0)
    layer = cls(2, 3, 3, stride=2, padding=1, rng=rng)
    x = rng.standard_normal((2, 2, 5, 5))
    dy = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dy)
    dW, db = layer.dW.copy(), layer.db.copy()
    layer.forward(x)
    layer.backward(dy)
    np.testing.assert_array_equal(layer.dW, dW)
    np.testing.assert_array_equal(layer.db, db)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)))
    layer.input_grad = False
    layer.forward(x)
    assert layer.backward(dy) is None and dx.shape == x.shape
    np.testing.assert_array_equal(layer.dW, dW)


def test_gradients_are_written_into_the_given_arrays():
    """A model binds W, dW to views of one flat buffer: backward must write into them."""
    rng = np.random.default_rng(0)
    layer = Conv2d(2, 3, 3, rng=rng)
    flat = np.zeros(layer.dW.size + layer.db.size)
    layer.dW = flat[:layer.dW.size].reshape(layer.W.shape)
    layer.db = flat[layer.dW.size:]
    x = rng.standard_normal((1, 2, 4, 4))
    layer.forward(x)
    layer.backward(np.ones((1, 3, 2, 2)))
    assert np.count_nonzero(flat) == flat.size
    np.testing.assert_allclose(flat[layer.dW.size:], 4.0)


def test_init_scales():
    rng = np.random.default_rng(0)
    c = Conv2d(16, 32, 3, rng=rng)
    assert np.abs(c.W).max() <= 1 / np.sqrt(16 * 9) and c.W.std() == pytest.approx(
        1 / np.sqrt(3 * 16 * 9), rel=0.05)
    t = ConvTranspose2d(16, 32, 4, rng=rng)
    assert np.abs(t.W).max() <= 1 / np.sqrt(32 * 16)           # PyTorch: fan_in from C_out
    he = Conv2d(16, 32, 3, rng=rng, init="he")
    assert he.W.std() == pytest.approx(np.sqrt(2 / (16 * 9)), rel=0.05) and np.all(he.b == 0)


# ------------------------------------------------------------------ a wrong backward is caught
def test_col2im_that_overwrites_instead_of_adding_is_caught(monkeypatch):
    """Where windows overlap their gradients must add; a col2im that assigns loses them."""
    layer, x = _conv((2, 2, 2, 7, 7, 3, 1, 1), 0)
    assert check_layer(layer, x).passed

    def col2im_assign(cols, shape, k, stride, out_h, out_w):
        c6 = cols.reshape(shape[0], out_h, out_w, k, k, shape[3])
        out = np.zeros(shape, dtype=cols.dtype)
        for i in range(k):
            for j in range(k):
                out[:, i:i + stride * (out_h - 1) + 1:stride,
                    j:j + stride * (out_w - 1) + 1:stride] = c6[:, :, :, i, j]
        return out

    monkeypatch.setattr(C, "col2im_nhwc", col2im_assign)
    rep = check_layer(layer, x)
    assert rep.errors()["x"] > 1e-3 and rep.errors()["W"] < PASS and not rep.passed


def test_a_transposed_weight_gradient_is_caught(monkeypatch):
    layer, x = _convT((2, 2, 3, 5, 5, 3, 2, 1), 0)
    assert check_layer(layer, x).passed
    real = C._convT_backward_fast

    def flipped(dy, xf, Wm, x_shape, s, p, k, dW, db, input_grad):
        dx = real(dy, xf, Wm, x_shape, s, p, k, dW, db, input_grad)
        dW[...] = dW[:, :, ::-1, ::-1].copy()                   # the kernel read upside down
        return dx

    monkeypatch.setattr(C, "_convT_backward_fast", flipped)
    rep = check_layer(layer, x)
    assert rep.errors()["W"] > 1e-3 and not rep.passed


# ------------------------------------------------------------------ bad shapes: one line
def _one_line(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_bad_shapes_get_one_line_naming_the_argument():
    rng = np.random.default_rng(0)
    conv = Conv2d(3, 4, 5, stride=2, padding=0, rng=rng)
    with pytest.raises(ValueError) as e:
        conv.forward(np.zeros((1, 3, 4, 9)))                   # 4 + 0 - 5 < 0: no window fits
    _one_line(e, "kernel_size=5", "size 4", "padding=0")
    with pytest.raises(ValueError) as e:
        conv.forward(np.zeros((1, 2, 9, 9)))
    _one_line(e, "x has 2 channels", "in_channels is 3")
    with pytest.raises(ValueError) as e:
        conv.forward(np.zeros((3, 81)))
    _one_line(e, "x must be 4-D (B, C, H, W)", "(3, 81)")
    with pytest.raises(ValueError) as e:
        conv.forward(np.zeros((3, 9, 9)))
    _one_line(e, "x must be 4-D")
    convT = ConvTranspose2d(2, 1, 3, stride=1, padding=2, rng=rng)
    with pytest.raises(ValueError) as e:
        convT.forward(np.zeros((1, 2, 1, 1)))                  # 0 - 4 + 3 < 1
    _one_line(e, "padding=2", "crops the whole output")
    with pytest.raises(ValueError) as e:
        ConvTranspose2d(2, 1, 3, stride=2, output_padding=2)
    _one_line(e, "output_padding must be smaller than stride (2)")
    for kwargs, word in [(dict(kernel_size=0), "kernel_size"), (dict(stride=0), "stride"),
                         (dict(padding=-1), "padding"), (dict(in_channels=2.5), "in_channels"),
                         (dict(out_channels=True), "out_channels")]:
        args = dict(in_channels=1, out_channels=1, kernel_size=3) | kwargs
        with pytest.raises(ValueError) as e:
            Conv2d(**args)
        _one_line(e, word)
    with pytest.raises(ValueError) as e:
        conv.forward(np.zeros((1, 3, 9, 9)))
        conv.backward(np.zeros((1, 4, 2, 2)))
    _one_line(e, "dy must have the output's shape (1, 4, 3, 3)")
    with pytest.raises(ValueError) as e:
        C.conv2d(np.zeros((1, 3, 9, 9)), np.zeros((4, 2, 3, 3)), np.zeros(4))
    _one_line(e, "x has 3 channels", "W.shape[1]")


def test_sizes():
    assert C.conv_output_size(28, 4, 2, 1) == 14
    assert C.conv_output_size(7, 3, 2, 1) == 4
    assert C.conv_transpose_output_size(14, 4, 2, 1) == 28
    assert C.conv_transpose_output_size(4, 3, 2, 1, 0) == 7
    assert C.conv_transpose_output_size(4, 3, 2, 1, 1) == 8
    assert C.conv_output_size(8, 3, 2, 1) == 4                  # 7 and 8 both map to 4
