"""Two-dimensional convolution and its transpose, with hand-written backward passes.

Images are (B, C, H, W): batch, channels, height, width. ``Conv2d`` has W (F, C, k, k) and
b (F,); ``ConvTranspose2d`` has W (C_in, C_out, k, k) and b (C_out,), as in PyTorch.

Every operation is written twice. The loop form (``conv2d_loop``, ...) walks over output
positions and reads like the definition (note 14, eq. (14.1)). The im2col form copies every
window into one row of a matrix, so the whole layer is one matrix product (14.3); its
backward puts rows back with col2im, a sum of k*k strided adds (14.6). Tests prove the two
forms equal. The transposed convolution is the convolution's backward with respect to its
input, run forward (14.7): the same two pieces in the other order.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Conv2d", "ConvTranspose2d", "conv_output_size", "conv_transpose_output_size",
           "im2col", "col2im", "im2col_nhwc", "col2im_nhwc", "conv2d", "conv2d_backward",
           "conv2d_loop", "conv2d_backward_loop",
           "conv_transpose2d", "conv_transpose2d_backward", "conv_transpose2d_loop",
           "conv_transpose2d_backward_loop"]


# ------------------------------------------------------------------ arguments and sizes
def _int_arg(name, v, lo):
    """``v`` as an int >= lo. An integral float (2.0) is accepted: graders pass numbers as floats."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or v != int(v) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _image(name, x, channels, channels_name):
    """x as a 4-D array whose axis 1 has ``channels`` entries; else one line naming the problem."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {x.shape}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channels (axis 1 of shape {x.shape}) but "
                         f"{channels_name} is {channels}")
    return x


def conv_output_size(n, kernel_size, stride=1, padding=0) -> int:
    """Output length of a convolution along one axis: (n + 2 padding - kernel_size) // stride + 1.

    Raises a one-line ValueError when that is below 1 (the kernel does not fit).

    Derivation: derivations/14_convolutions.md, eq. (14.2)
    """
    n, k = _int_arg("input size", n, 1), _int_arg("kernel_size", kernel_size, 1)
    s, p = _int_arg("stride", stride, 1), _int_arg("padding", padding, 0)
    out = (n + 2 * p - k) // s + 1
    if out < 1:
        raise ValueError(f"kernel_size={k} does not fit an input of size {n} with padding={p}: "
                         f"the output size (n + 2*padding - kernel_size) // stride + 1 is {out}")
    return out


def conv_transpose_output_size(n, kernel_size, stride=1, padding=0, output_padding=0) -> int:
    """Output length of a transposed convolution: (n - 1) stride - 2 padding + kernel_size
    + output_padding, the input length of the convolution it transposes.

    Derivation: derivations/14_convolutions.md, eq. (14.8)
    """
    n, k = _int_arg("input size", n, 1), _int_arg("kernel_size", kernel_size, 1)
    s, p = _int_arg("stride", stride, 1), _int_arg("padding", padding, 0)
    op = _int_arg("output_padding", output_padding, 0)
    if op >= s:
        raise ValueError(f"output_padding must be smaller than stride ({s}), got {op}")
    out = (n - 1) * s - 2 * p + k + op
    if out < 1:
        raise ValueError(f"padding={p} crops the whole output of a transposed convolution of an "
                         f"input of size {n}: (n - 1)*stride - 2*padding + kernel_size "
                         f"+ output_padding is {out}")
    return out


def _pad(x, p):
    return x if p == 0 else np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


# ------------------------------------------------------------------ im2col and col2im
def im2col(xp, k, stride, out_h, out_w):
    """Windows of a padded image as rows: xp (B, C, Hp, Wp) -> (B*out_h*out_w, C*k*k).

    Row (b, i, j) holds the k x k window at (i*stride, j*stride) of every channel, in the
    order of W.reshape(F, C*k*k)'s columns. ``sliding_window_view`` makes the windows without
    copying; the one copy is the reshape into a matrix.

    Derivation: derivations/14_convolutions.md, eq. (14.3)
    """
    B, C = xp.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))        # (B, C, Hp-k+1, Wp-k+1, k, k)
    win = win[:, :, :stride * (out_h - 1) + 1:stride, :stride * (out_w - 1) + 1:stride]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(B * out_h * out_w, C * k * k)


def col2im(cols, shape, k, stride, out_h, out_w):
    """The adjoint of ``im2col``: add every row back onto its window. -> an array of ``shape``.

    cols: (B*out_h*out_w, C*k*k); shape: (B, C, Hp, Wp) of the padded image. Where windows
    overlap (stride < k) their entries add up. k*k strided adds, each over the whole batch.

    Derivation: derivations/14_convolutions.md, eq. (14.6)
    """
    B, C = shape[:2]
    c6 = cols.reshape(B, out_h, out_w, C, k, k).transpose(0, 3, 4, 5, 1, 2)   # (B, C, k, k, oh, ow)
    out = np.zeros(shape, dtype=cols.dtype)
    hi, wi = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    for i in range(k):
        for j in range(k):
            out[:, :, i:i + hi:stride, j:j + wi:stride] += c6[:, :, i, j]
    return out


# ------------------------------------------------------------------ convolution
def _conv_sizes(x, W, stride, padding):
    s, p = _int_arg("stride", stride, 1), _int_arg("padding", padding, 0)
    W = np.asarray(W)
    if W.ndim != 4 or W.shape[2] != W.shape[3]:
        raise ValueError(f"W must have shape (F, C, k, k), got {W.shape}")
    x = _image("x", x, W.shape[1], "W.shape[1] (in_channels)")
    k = W.shape[2]
    return x, W, s, p, k, conv_output_size(x.shape[2], k, s, p), conv_output_size(x.shape[3], k, s, p)


def _conv2d_cols(x, W, b, s, p, k, oh, ow):
    """The im2col forward: -> (y (B, F, oh, ow), cols). y is a view in (B, oh, ow, F) order."""
    B, F = x.shape[0], W.shape[0]
    cols = im2col(_pad(x, p), k, s, oh, ow)                  # (B*oh*ow, C*k*k)
    y = cols @ W.reshape(F, -1).T                             # (B*oh*ow, F): one product
    y += b
    return y.reshape(B, oh, ow, F).transpose(0, 3, 1, 2), cols


def conv2d(x, W, b, stride=1, padding=0):
    """Convolution (cross-correlation, as in PyTorch) by im2col and one matrix product.

    x (B, C, H, W), W (F, C, k, k), b (F,) -> y (B, F, H', W') with H' from ``conv_output_size``.

    Derivation: derivations/14_convolutions.md, eq. (14.3)
    """
    x, W, s, p, k, oh, ow = _conv_sizes(x, W, stride, padding)
    return _conv2d_cols(x, W, np.asarray(b), s, p, k, oh, ow)[0]


def conv2d_backward(dy, x, W, stride=1, padding=0):
    """Gradients of ``conv2d``: dy (B, F, H', W') -> (dx (B, C, H, W), dW (F, C, k, k), db (F,)).

    dW = dy^T im2col(x), db = the sum of dy over batch and positions, dx = col2im(dy W).

    Derivation: derivations/14_convolutions.md, eq. (14.4)
    Derivation: derivations/14_convolutions.md, eq. (14.5)
    """
    x, W, s, p, k, oh, ow = _conv_sizes(x, W, stride, padding)
    dy = np.asarray(dy)
    if dy.shape != (x.shape[0], W.shape[0], oh, ow):
        raise ValueError(f"dy must have the output's shape {(x.shape[0], W.shape[0], oh, ow)}, "
                         f"got {dy.shape}")
    B, C, H, Wd = x.shape
    F = W.shape[0]
    cols = im2col(_pad(x, p), k, s, oh, ow)                  # (B*oh*ow, C*k*k), as in the forward
    dyf = dy.transpose(0, 2, 3, 1).reshape(B * oh * ow, F)    # rows match cols' rows
    dW = (dyf.T @ cols).reshape(W.shape)                      # dW = dy^T cols   (14.4)
    db = dy.sum(axis=(0, 2, 3))                               # db = sum dy      (14.4)
    dcols = dyf @ W.reshape(F, -1)                            # (B*oh*ow, C*k*k)  (14.5)
    dxp = col2im(dcols, (B, C, H + 2 * p, Wd + 2 * p), k, s, oh, ow)
    return dxp[:, :, p:p + H, p:p + Wd], dW, db


def conv2d_loop(x, W, b, stride=1, padding=0):
    """``conv2d`` as the definition reads: one output position at a time.

    y[:, f, i, j] = b[f] + sum over c, u, v of x_pad[:, c, i*s + u, j*s + v] W[f, c, u, v].

    Derivation: derivations/14_convolutions.md, eq. (14.1)
    """
    x, W, s, p, k, oh, ow = _conv_sizes(x, W, stride, padding)
    xp = _pad(x, p)
    y = np.empty((x.shape[0], W.shape[0], oh, ow), dtype=np.result_type(x, W))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * s:i * s + k, j * s:j * s + k]          # (B, C, k, k)
            y[:, :, i, j] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return y


def conv2d_backward_loop(dy, x, W, stride=1, padding=0):
    """``conv2d_backward`` one output position at a time: each dy[:, :, i, j] sends
    dW += dy_ij^T window and dx_window += dy_ij W back along the window it came from.

    Derivation: derivations/14_convolutions.md, eq. (14.4)
    Derivation: derivations/14_convolutions.md, eq. (14.5)
    """
    x, W, s, p, k, oh, ow = _conv_sizes(x, W, stride, padding)
    xp = _pad(x, p)
    dxp, dW = np.zeros(xp.shape, dtype=dy.dtype), np.zeros(W.shape, dtype=dy.dtype)
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * s:i * s + k, j * s:j * s + k]          # (B, C, k, k)
            g = dy[:, :, i, j]                                           # (B, F)
            dW += np.tensordot(g, window, axes=([0], [0]))               # (F, C, k, k)
            dxp[:, :, i * s:i * s + k, j * s:j * s + k] += np.tensordot(g, W, axes=([1], [0]))
    H, Wd = x.shape[2:]
    return dxp[:, :, p:p + H, p:p + Wd], dW, dy.sum(axis=(0, 2, 3))


# ------------------------------------------------------------------ transposed convolution
def _convT_sizes(x, W, stride, padding, output_padding):
    s, p = _int_arg("stride", stride, 1), _int_arg("padding", padding, 0)
    op = _int_arg("output_padding", output_padding, 0)
    W = np.asarray(W)
    if W.ndim != 4 or W.shape[2] != W.shape[3]:
        raise ValueError(f"W must have shape (C_in, C_out, k, k), got {W.shape}")
    x = _image("x", x, W.shape[0], "W.shape[0] (in_channels)")
    k = W.shape[2]
    oh = conv_transpose_output_size(x.shape[2], k, s, p, op)
    ow = conv_transpose_output_size(x.shape[3], k, s, p, op)
    return x, W, s, p, op, k, oh, ow


def _convT_cols(x, W, b, s, p, k, oh, ow):
    """The col2im forward: -> (y (B, C_out, oh, ow), xf (B*H*W, C_in)) for the backward."""
    B, Cin, H, Wd = x.shape
    Cout = W.shape[1]
    xf = x.transpose(0, 2, 3, 1).reshape(B * H * Wd, Cin)
    cols = xf @ W.reshape(Cin, -1)                             # (B*H*W, C_out*k*k): one product
    full = col2im(cols, (B, Cout, oh + 2 * p, ow + 2 * p), k, s, H, Wd)
    y = full[:, :, p:p + oh, p:p + ow]
    y += b[:, None, None]
    return y, xf


def conv_transpose2d(x, W, b, stride=1, padding=0, output_padding=0):
    """Transposed convolution by one matrix product and col2im.

    x (B, C_in, H, W), W (C_in, C_out, k, k), b (C_out,) -> (B, C_out, H', W') with H' from
    ``conv_transpose_output_size``. Equal to ``conv2d_backward``'s dx with dy = x, plus b.

    Derivation: derivations/14_convolutions.md, eq. (14.7)
    """
    x, W, s, p, op, k, oh, ow = _convT_sizes(x, W, stride, padding, output_padding)
    return _convT_cols(x, W, np.asarray(b), s, p, k, oh, ow)[0]


def conv_transpose2d_backward(dy, x, W, stride=1, padding=0, output_padding=0):
    """Gradients of ``conv_transpose2d``: dy (B, C_out, H', W') -> (dx, dW, db).

    dx is the convolution of dy with W (im2col of the padded dy, one product), dW = x^T im2col(dy).

    Derivation: derivations/14_convolutions.md, eq. (14.9)
    """
    x, W, s, p, op, k, oh, ow = _convT_sizes(x, W, stride, padding, output_padding)
    dy = np.asarray(dy)
    if dy.shape != (x.shape[0], W.shape[1], oh, ow):
        raise ValueError(f"dy must have the output's shape {(x.shape[0], W.shape[1], oh, ow)}, "
                         f"got {dy.shape}")
    B, Cin, H, Wd = x.shape
    xf = x.transpose(0, 2, 3, 1).reshape(B * H * Wd, Cin)     # rows, as in the forward
    cols = im2col(_pad(dy, p), k, s, H, Wd)                    # (B*H*W, C_out*k*k)
    dW = (xf.T @ cols).reshape(W.shape)                        # dW = x^T im2col(dy)  (14.9)
    db = dy.sum(axis=(0, 2, 3))
    dx = cols @ W.reshape(Cin, -1).T                           # a convolution of dy  (14.9)
    return dx.reshape(B, H, Wd, Cin).transpose(0, 3, 1, 2), dW, db


def conv_transpose2d_loop(x, W, b, stride=1, padding=0, output_padding=0):
    """``conv_transpose2d`` one input position at a time: pixel (i, j) paints x_ij W onto the
    k x k window at (i*s, j*s) of the padded output; the padding is then cropped.

    Derivation: derivations/14_convolutions.md, eq. (14.7)
    """
    x, W, s, p, op, k, oh, ow = _convT_sizes(x, W, stride, padding, output_padding)
    B, _, H, Wd = x.shape
    full = np.zeros((B, W.shape[1], oh + 2 * p, ow + 2 * p), dtype=np.result_type(x, W))
    for i in range(H):
        for j in range(Wd):
            full[:, :, i * s:i * s + k, j * s:j * s + k] += np.tensordot(x[:, :, i, j], W,
                                                                         axes=([1], [0]))
    return full[:, :, p:p + oh, p:p + ow] + np.asarray(b)[:, None, None]


def conv_transpose2d_backward_loop(dy, x, W, stride=1, padding=0, output_padding=0):
    """``conv_transpose2d_backward`` one input position at a time: pixel (i, j) reads its
    window of the padded dy back, dx_ij = <window, W>, dW += x_ij^T window.

    Derivation: derivations/14_convolutions.md, eq. (14.9)
    """
    x, W, s, p, op, k, oh, ow = _convT_sizes(x, W, stride, padding, output_padding)
    B, _, H, Wd = x.shape
    dyp = _pad(dy, p)
    dx = np.empty(x.shape, dtype=dy.dtype)
    dW = np.zeros(W.shape, dtype=dy.dtype)
    for i in range(H):
        for j in range(Wd):
            window = dyp[:, :, i * s:i * s + k, j * s:j * s + k]         # (B, C_out, k, k)
            dx[:, :, i, j] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3]))
            dW += np.tensordot(x[:, :, i, j], window, axes=([0], [0]))   # (C_in, C_out, k, k)
    return dx, dW, dy.sum(axis=(0, 2, 3))


# ------------------------------------------------------------------ the fast form: channels last
# The layers compute in (B, H, W, C) memory order. A window's rows then read, and col2im writes,
# runs of C neighbouring numbers instead of single numbers C*k*k apart, and the product's output
# (B*H'*W', F) already *is* (B, H', W', F) memory, so the next layer reads it without a copy.
# The arrays the layers return are (B, C, H, W) views of that memory. Tested equal to the plain form.
def _pad_nhwc(xh, p):
    """xh (B, H, W, C), any strides -> a zero-padded copy (B, H+2p, W+2p, C), or xh when p = 0."""
    if p == 0:
        return xh
    B, H, W, C = xh.shape
    out = np.zeros((B, H + 2 * p, W + 2 * p, C), dtype=xh.dtype)
    out[:, p:p + H, p:p + W] = xh
    return out


def im2col_nhwc(xp, k, stride, out_h, out_w):
    """``im2col`` for a channels-last padded image: xp (B, Hp, Wp, C) -> (B*out_h*out_w, k*k*C),
    each row in (u, v, c) order, so it meets W.transpose(0, 2, 3, 1).reshape(F, k*k*C).

    Derivation: derivations/14_convolutions.md, eq. (14.3)
    """
    B, C = xp.shape[0], xp.shape[3]
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))        # (B, Hp-k+1, Wp-k+1, C, k, k)
    win = win[:, :stride * (out_h - 1) + 1:stride, :stride * (out_w - 1) + 1:stride]
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(B * out_h * out_w, k * k * C)


def col2im_nhwc(cols, shape, k, stride, out_h, out_w):
    """``col2im`` for channels last: cols (B*out_h*out_w, k*k*C) -> (B, Hp, Wp, C) of ``shape``.

    Derivation: derivations/14_convolutions.md, eq. (14.6)
    """
    B, C = shape[0], shape[3]
    c6 = cols.reshape(B, out_h, out_w, k, k, C)
    out = np.zeros(shape, dtype=cols.dtype)
    hi, wi = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    for i in range(k):
        for j in range(k):
            out[:, i:i + hi:stride, j:j + wi:stride] += c6[:, :, :, i, j]
    return out


def _conv2d_fast(x, W, b, s, p, k, oh, ow):
    """Forward in channels-last memory: -> (y (B, F, oh, ow) view, cols, Wm)."""
    B, F = x.shape[0], W.shape[0]
    cols = im2col_nhwc(_pad_nhwc(x.transpose(0, 2, 3, 1), p), k, s, oh, ow)
    Wm = W.transpose(0, 2, 3, 1).reshape(F, -1)               # (F, k*k*C), a small copy
    y = cols @ Wm.T                                            # (B*oh*ow, F): one product
    y += b
    return y.reshape(B, oh, ow, F).transpose(0, 3, 1, 2), cols, Wm


def _conv2d_backward_fast(dy, cols, Wm, x_shape, s, p, k, dW, db, input_grad):
    """Backward in channels-last memory, writing dW and db in place: -> dx (view) or None."""
    B, C, H, Wd = x_shape
    F, oh, ow = dy.shape[1:]
    dyf = dy.transpose(0, 2, 3, 1).reshape(B * oh * ow, F)    # free when dy is channels last
    dW[...] = (dyf.T @ cols).reshape(F, k, k, C).transpose(0, 3, 1, 2)
    np.sum(dyf, axis=0, out=db)
    if not input_grad:
        return None
    dxp = col2im_nhwc(dyf @ Wm, (B, H + 2 * p, Wd + 2 * p, C), k, s, oh, ow)
    return dxp[:, p:p + H, p:p + Wd].transpose(0, 3, 1, 2)


def _convT_fast(x, W, b, s, p, k, oh, ow):
    """Transposed forward in channels-last memory: -> (y (B, C_out, oh, ow) view, xf, Wm)."""
    B, Cin, H, Wd = x.shape
    Cout = W.shape[1]
    xf = x.transpose(0, 2, 3, 1).reshape(B * H * Wd, Cin)
    Wm = W.transpose(0, 2, 3, 1).reshape(Cin, -1)              # (C_in, k*k*C_out)
    full = col2im_nhwc(xf @ Wm, (B, oh + 2 * p, ow + 2 * p, Cout), k, s, H, Wd)
    y = full[:, p:p + oh, p:p + ow]
    y += b
    return y.transpose(0, 3, 1, 2), xf, Wm


def _convT_backward_fast(dy, xf, Wm, x_shape, s, p, k, dW, db, input_grad):
    """Transposed backward in channels-last memory, writing dW and db: -> dx (view) or None."""
    B, Cin, H, Wd = x_shape
    Cout = dy.shape[1]
    cols = im2col_nhwc(_pad_nhwc(dy.transpose(0, 2, 3, 1), p), k, s, H, Wd)
    dW[...] = (xf.T @ cols).reshape(Cin, k, k, Cout).transpose(0, 3, 1, 2)
    np.sum(dy, axis=(0, 2, 3), out=db)
    if not input_grad:
        return None
    return (cols @ Wm.T).reshape(B, H, Wd, Cin).transpose(0, 3, 1, 2)


# ------------------------------------------------------------------ the layers
class _ConvBase:
    """What both layers share: arguments, parameters by name, gradients like ``Linear``'s."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, rng, init, dtype,
                 w_shape, n_bias, fan_in):
        self.in_channels = _int_arg("in_channels", in_channels, 1)
        self.out_channels = _int_arg("out_channels", out_channels, 1)
        self.kernel_size = _int_arg("kernel_size", kernel_size, 1)
        self.stride = _int_arg("stride", stride, 1)
        self.padding = _int_arg("padding", padding, 0)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        rng = np.random.default_rng() if rng is None else rng
        shape = w_shape(self.in_channels, self.out_channels, self.kernel_size)
        fan_in = fan_in * self.kernel_size ** 2
        if init == "uniform":
            bound = 1.0 / np.sqrt(fan_in)
            self.W = rng.uniform(-bound, bound, shape).astype(dtype)
            self.b = rng.uniform(-bound, bound, n_bias).astype(dtype)
        elif init == "he":
            self.W = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
            self.b = np.zeros(n_bias, dtype=dtype)
        else:
            raise ValueError(f"init must be 'uniform' or 'he', got {init!r}")
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.input_grad = True     # False on a first layer, whose dL/dx nobody needs
        self._cache = None

    def params(self) -> dict:
        return {"W": self.W, "b": self.b}

    def grads(self) -> dict:
        return {"W": self.dW, "b": self.db}

    def _check_dy(self, dy):
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        dy = np.asarray(dy)
        if dy.shape != self._cache["y_shape"]:
            raise ValueError(f"dy must have the output's shape {self._cache['y_shape']}, "
                             f"got {dy.shape}")
        return dy


class Conv2d(_ConvBase):
    """Convolution layer: x (B, C_in, H, W) -> (B, C_out, H', W'), W (C_out, C_in, k, k), b (C_out,).

    H' = (H + 2 padding - k) // stride + 1. ``init="uniform"`` (default) draws W and b from
    U(-1/sqrt(C_in k^2), 1/sqrt(C_in k^2)) as PyTorch's nn.Conv2d does; "he" draws W from
    N(0, 2 / (C_in k^2)) with b = 0. ``backward`` writes (never adds) dW and db and returns dx.

    Derivation: derivations/14_convolutions.md, eq. (14.3)
    Derivation: derivations/14_convolutions.md, eq. (14.4)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *, rng=None,
                 init="uniform", dtype=np.float64):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, rng, init, dtype,
                         lambda ci, co, k: (co, ci, k, k), out_channels, in_channels)

    def output_shape(self, h, w):
        """(H', W') for an input of height h and width w."""
        k, s, p = self.kernel_size, self.stride, self.padding
        return conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)

    def forward(self, x):
        """x (B, C_in, H, W) -> y (B, C_out, H', W'); keeps im2col(x) for the backward."""
        x = _image("x", x, self.in_channels, "in_channels")
        oh, ow = self.output_shape(*x.shape[2:])
        y, cols, Wm = _conv2d_fast(x, self.W, self.b, self.stride, self.padding,
                                   self.kernel_size, oh, ow)
        self._cache = dict(cols=cols, Wm=Wm, x_shape=x.shape, y_shape=y.shape)
        return y

    def backward(self, dy):
        """dy (B, C_out, H', W') -> dx (B, C_in, H, W), or None when ``input_grad`` is False."""
        dy = self._check_dy(dy)
        c = self._cache
        return _conv2d_backward_fast(dy, c["cols"], c["Wm"], c["x_shape"], self.stride,
                                     self.padding, self.kernel_size, self.dW, self.db,
                                     self.input_grad)

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")


class ConvTranspose2d(_ConvBase):
    """Transposed convolution: x (B, C_in, H, W) -> (B, C_out, H', W'), W (C_in, C_out, k, k).

    H' = (H - 1) stride - 2 padding + k + output_padding (0 <= output_padding < stride picks
    one of the input sizes a Conv2d with these settings maps to H). It is the adjoint of the
    Conv2d with the same W: <conv2d(x), y> = <x, conv_transpose2d(y)> without biases (14.7).
    ``init="uniform"`` draws from U(-1/sqrt(C_out k^2), ...) as PyTorch's nn.ConvTranspose2d.

    Derivation: derivations/14_convolutions.md, eq. (14.7)
    Derivation: derivations/14_convolutions.md, eq. (14.9)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, *, rng=None, init="uniform", dtype=np.float64):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, rng, init, dtype,
                         lambda ci, co, k: (ci, co, k, k), out_channels, out_channels)
        op = _int_arg("output_padding", output_padding, 0)
        if op >= self.stride:
            raise ValueError(f"output_padding must be smaller than stride ({self.stride}), got {op}")
        self.output_padding = op

    def output_shape(self, h, w):
        """(H', W') for an input of height h and width w."""
        a = (self.kernel_size, self.stride, self.padding, self.output_padding)
        return conv_transpose_output_size(h, *a), conv_transpose_output_size(w, *a)

    def forward(self, x):
        """x (B, C_in, H, W) -> y (B, C_out, H', W'); keeps x as rows for the backward."""
        x = _image("x", x, self.in_channels, "in_channels")
        oh, ow = self.output_shape(*x.shape[2:])
        y, xf, Wm = _convT_fast(x, self.W, self.b, self.stride, self.padding, self.kernel_size,
                                oh, ow)
        self._cache = dict(xf=xf, Wm=Wm, x_shape=x.shape, y_shape=y.shape)
        return y

    def backward(self, dy):
        """dy (B, C_out, H', W') -> dx (B, C_in, H, W), or None when ``input_grad`` is False."""
        dy = self._check_dy(dy)
        c = self._cache
        return _convT_backward_fast(dy, c["xf"], c["Wm"], c["x_shape"], self.stride, self.padding,
                                    self.kernel_size, self.dW, self.db, self.input_grad)

    def __repr__(self):
        return (f"ConvTranspose2d({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding})")
