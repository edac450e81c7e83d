"""A convolutional VAE: the VAE family of family.py with convolutional trunks.

Encoder: the image through ``Conv2d`` + activation layers, flattened, then the two linear
Gaussian heads (mu, logvar). Decoder: z through a linear layer + activation, reshaped to the
encoder's last feature map, then ``ConvTranspose2d`` layers back to the image's size; the last
one is the likelihood's head (Bernoulli logits or the Gaussian mean; a second last layer gives
the learned log-variance). Everything above the trunks (sampling, the likelihood, the KL, the
IWAE bound, labels, the five backward steps) is ``FamilyVAE``'s own code: the trunks below offer
the forward/backward that code calls on its MLPs, on flat (B, C*H*W) images.
"""
from __future__ import annotations

import numpy as np

from . import _registry, _validate
from .conv_layers import Conv2d, ConvTranspose2d, conv_output_size
from .family import FamilyVAE
from .layers import Linear, make_activation

__all__ = ["ConvVAE", "conv_run_bytes"]


class _ConvEncoderTrunk:
    """Flat images (B, C*H*W) [+ one-hot labels (B, n_y)] -> convolutions -> (B, F [+ n_y]).

    Labels skip the convolutions and join the flattened features, so the heads see both."""

    def __init__(self, convs, acts, image_shape):
        self.linears, self.acts, self.image_shape = convs, acts, image_shape
        self.D = int(np.prod(image_shape))

    def forward(self, xin):
        B = xin.shape[0]
        h = xin[:, :self.D].reshape((B,) + self.image_shape)
        for conv, act in zip(self.linears, self.acts):
            h = act.forward(conv.forward(h))
        self.feature_shape = h.shape[1:]
        feats = h.reshape(B, -1)
        return feats if xin.shape[1] == self.D else np.concatenate([feats, xin[:, self.D:]], 1)

    def backward(self, dh):
        """dh (B, F [+ n_y]) -> dx (B, C*H*W), or None when the first layer needs no dx."""
        B, F = dh.shape[0], int(np.prod(self.feature_shape))
        d = dh[:, :F].reshape((B,) + self.feature_shape)          # label columns: data, dropped
        for conv, act in zip(reversed(self.linears), reversed(self.acts)):
            d = conv.backward(act.backward(d))
        return None if d is None else d.reshape(B, -1)


class _ConvDecoderTrunk:
    """(N, Z [+ n_y]) -> Linear + act -> reshape -> [ConvTranspose2d + act]... -> (N, C', h, w)."""

    def __init__(self, dense, dense_act, convs, acts, feature_shape):
        self.dense, self.dense_act, self.feature_shape = dense, dense_act, feature_shape
        self.convs, self.acts = convs, acts
        self.linears = [dense] + convs

    def forward(self, zin):
        h = self.dense_act.forward(self.dense.forward(zin)).reshape((zin.shape[0],) + self.feature_shape)
        for conv, act in zip(self.convs, self.acts):
            h = act.forward(conv.forward(h))
        return h

    def backward(self, dh):
        for conv, act in zip(reversed(self.convs), reversed(self.acts)):
            dh = conv.backward(act.backward(dh))
        return self.dense.backward(self.dense_act.backward(dh.reshape(dh.shape[0], -1)))


class _FlatHead:
    """A ConvTranspose2d head whose output is flattened to (N, C*H*W), as the likelihoods want."""

    def __init__(self, conv):
        self.conv = conv

    def forward(self, h):
        y = self.conv.forward(h)
        return y.reshape(y.shape[0], -1)

    def backward(self, dy):
        return self.conv.backward(dy.reshape(self.conv._cache["y_shape"]))


@_registry.register("conv")
class ConvVAE(FamilyVAE):
    """A VAE with convolutional encoder and transposed-convolutional decoder.

    image_shape: (C, H, W) of one image; data are given flat, (B, C*H*W), as to ``VAE``
    (or as (B, C, H, W)). channels: the encoder's convolutions, e.g. (32, 64) with kernel 4,
    stride 2, padding 1 maps 28 x 28 -> 14 x 14 -> 7 x 7; the decoder mirrors them with
    transposed convolutions (output_padding chosen so each recovers the encoder's size).
    Options as ``FamilyVAE``: the likelihoods, ``n_classes`` (labels join the flattened
    features in the encoder and z in the decoder), ``objective="iwae"``, K samples and beta in
    ``forward``; the posterior is diagonal. Parameters live in one flat buffer with names
    ``enc.conv0.W``, ..., ``enc.mu.W``, ``dec.in.W``, ``dec.convT0.W``, ..., ``dec.out.W``
    (``dec.logvar.W``).

    Derivation: derivations/14_convolutions.md, eq. (14.10)
    """

    def __init__(self, image_shape=(1, 28, 28), z_dim=20, channels=(32, 64), kernel_size=4,
                 stride=2, padding=1, likelihood="bernoulli", activation="relu", c=1.0, seed=0,
                 dtype=np.float64, n_classes=None, objective="elbo", init="uniform", x_dim=None):
        image_shape = _validate.int_sizes("image_shape", image_shape)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {image_shape}")
        if x_dim is not None and x_dim != int(np.prod(image_shape)):
            raise ValueError(f"x_dim must be C*H*W = {int(np.prod(image_shape))} for image_shape "
                             f"{image_shape}, got {x_dim!r}")
        channels = _validate.int_sizes("channels", channels)
        if not channels:
            raise ValueError("channels must name at least one convolution, got ()")
        k = _validate.positive_int("kernel_size", kernel_size)
        self.image_shape, self.channels = image_shape, channels
        self.kernel_size, self.stride = k, _validate.positive_int("stride", stride)
        self.padding = _validate.int_in_range("padding", padding, 0, k - 1)
        self._sizes = _feature_sizes(image_shape, channels, k, self.stride, self.padding)
        super().__init__(int(np.prod(image_shape)), z_dim, hidden=(), likelihood=likelihood,
                         activation=activation, c=c, seed=seed, dtype=dtype, n_classes=n_classes,
                         objective=objective, init=init)

    def _make_layers(self, init_rng, n_y=None, extra_head=None):
        """Convolutions, the Gaussian heads, a dense layer and transposed convolutions, drawn in
        this order from ``init_rng``."""
        k, s, p, dt = self.kernel_size, self.stride, self.padding, self.dtype
        channels, image_shape, sizes = self.channels, self.image_shape, self._sizes
        n_y, act, init = self.n_classes or 0, self.activation, self.init
        lin_init = "glorot" if init == "he" else "uniform"
        # encoder: convolutions, then the Gaussian heads on the flattened features (+ labels)
        ins = (image_shape[0],) + channels[:-1]
        convs = [Conv2d(a, b, k, s, p, rng=init_rng, init=init, dtype=dt)
                 for a, b in zip(ins, channels)]
        convs[0].input_grad = False                # nobody needs dL/dx of the data
        self.enc = _ConvEncoderTrunk(convs, [make_activation(act) for _ in convs], image_shape)
        feature_shape = (channels[-1],) + sizes[-1]
        n_feat = int(np.prod(feature_shape))
        self.enc_mu = Linear(n_feat + n_y, self.z_dim, init_rng, lin_init, dt)
        self.enc_logvar = Linear(n_feat + n_y, self.z_dim, init_rng, lin_init, dt)
        self.enc_off = None
        # decoder: a dense layer to the last feature map, then transposed convolutions back
        dense = Linear(self.z_dim + n_y, n_feat, init_rng, "he" if init == "he" else "uniform", dt)
        tconvs = []
        for i in range(len(channels) - 1, -1, -1):
            c_out = channels[i - 1] if i > 0 else image_shape[0]
            tconvs.append(ConvTranspose2d(channels[i], c_out, k, s, p, _output_padding(sizes[i], k, s, p),
                                          rng=init_rng, init=init, dtype=dt))
        last = tconvs.pop()
        self.dec = _ConvDecoderTrunk(dense, make_activation(act), tconvs,
                                     [make_activation(act) for _ in tconvs], feature_shape)
        self.dec_out = _FlatHead(last)
        self.dec_logvar = None
        if self.likelihood_name == "gaussian_learned":   # a second head on the same feature map
            self.dec_logvar = _FlatHead(ConvTranspose2d(last.in_channels, image_shape[0], k, s, p,
                                                        last.output_padding, rng=init_rng,
                                                        init=init, dtype=dt))

    def _named_linears(self):
        """(name, layer) for every layer with W and b, in the flat buffer's order."""
        named = [(f"enc.conv{i}", c) for i, c in enumerate(self.enc.linears)]
        named += [("enc.mu", self.enc_mu), ("enc.logvar", self.enc_logvar), ("dec.in", self.dec.dense)]
        named += [(f"dec.convT{i}", c) for i, c in enumerate(self.dec.convs)]
        named += [("dec.out", self.dec_out.conv)]
        if self.dec_logvar is not None:
            named += [("dec.logvar", self.dec_logvar.conv)]
        return named

    @property
    def config(self) -> dict:
        """JSON-able settings that rebuild this architecture with ``from_config``."""
        return {"model": self.kind, "image_shape": list(self.image_shape), "x_dim": self.x_dim,
                "z_dim": self.z_dim, "channels": list(self.channels),
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "likelihood": self.likelihood_name, "activation": self.activation, "c": self.c,
                "seed": self.seed, "dtype": self.dtype.name, "n_classes": self.n_classes,
                "objective": self.objective, "init": self.init}

    def _check_x(self, x, name="x"):
        x = np.asarray(x)
        if x.ndim == 4 and x.shape[1:] == self.image_shape:    # images as (B, C, H, W)
            x = x.reshape(x.shape[0], -1)
        elif x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"{name} must have shape (B, {self.x_dim}) or (B,) + "
                             f"{self.image_shape}, got {x.shape}")
        return super()._check_x(x, name)

    def filters(self):
        """The first convolution's weights (C_out, C_in, k, k): what its filters look for."""
        return self.enc.linears[0].W.copy()

    def __repr__(self):
        extra = f", n_classes={self.n_classes}" if self.n_classes else ""
        extra += f", objective={self.objective!r}" if self.objective != "elbo" else ""
        return (f"ConvVAE(image_shape={self.image_shape}, z_dim={self.z_dim}, "
                f"channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, likelihood={self.likelihood_name!r}, "
                f"activation={self.activation!r}{extra}, dtype={self.dtype.name}, "
                f"n_params={self.flat_params.size})")


def _feature_sizes(image_shape, channels, k, s, p):
    """[(H, W) of the image, then after each convolution]; one line when an image is too small."""
    sizes = [tuple(image_shape[1:])]
    for i in range(len(channels)):
        try:
            sizes.append(tuple(conv_output_size(n, k, s, p) for n in sizes[-1]))
        except ValueError as e:
            raise ValueError(f"image_shape {tuple(image_shape)} is too small for {len(channels)} "
                             f"convolutions (channels={tuple(channels)}): at convolution {i}, "
                             f"{e}") from None
    return sizes


def _output_padding(size, k, s, p):
    """The output_padding that makes a transposed convolution return ``size`` (H, W)."""
    ops = {(n + 2 * p - k) % s for n in size}
    if len(ops) != 1:
        raise ValueError(f"image_shape: a feature map of size {size} needs a different "
                         f"output_padding per axis to be recovered; choose sides with equal "
                         f"(side + 2*padding - kernel_size) % stride")
    return ops.pop()


def conv_run_bytes(image_shape, z_dim, channels, kernel_size=4, stride=2, padding=1,
                   likelihood="bernoulli", *, batch_size=100, k=1, itemsize=4, n_classes=None,
                   eval_batch=1000) -> int:
    """Rough peak memory in bytes of training a ``ConvVAE`` (an overestimate, not a bound).

    Parameters: six copies (values, gradients, Adam's two moments, the last good state, a
    checkpoint). Activations of one step: per convolution its im2col matrix and the matrix of
    its gradient, its output with activation and their gradients; the decoder's for K*B
    images. The larger of a training batch and an evaluation batch (K = 1).

    Derivation: derivations/14_convolutions.md, eq. (14.11)
    """
    C = int(image_shape[0])
    sizes = _feature_sizes(image_shape, channels, kernel_size, stride, padding)
    kk, n_y = kernel_size ** 2, n_classes or 0
    ins = (C,) + tuple(channels[:-1])
    n_feat = int(channels[-1] * np.prod(sizes[-1]))
    heads = 2 if likelihood == "gaussian_learned" else 1
    conv_w = sum(a * b * kk + b for a, b in zip(ins, channels))
    tconv_w = sum(b * a * kk + a for a, b in zip(ins[1:], channels[1:])) + heads * (channels[0] * C * kk + C)
    n_par = conv_w + 2 * ((n_feat + n_y) * z_dim + z_dim) + (z_dim + n_y) * n_feat + n_feat + tconv_w

    def per_image():
        """Numbers held per image by one convolution stack (forward and backward)."""
        total = 0
        for (h, w), (oh, ow), a, b in zip(sizes[:-1], sizes[1:], ins, channels):
            cols = oh * ow * a * kk                     # im2col rows and their gradient
            total += 2 * cols + 4 * b * oh * ow + 2 * a * (h + 2 * padding) * (w + 2 * padding)
        return total

    enc, dec = per_image(), heads * per_image() + 4 * n_feat

    def acts(B, K):
        return B * (enc + 4 * C * int(np.prod(image_shape[1:])) + 6 * z_dim) + K * B * (
            dec + 3 * heads * int(np.prod(image_shape)) + 3 * z_dim)

    act = max(acts(batch_size, k), acts(min(eval_batch, max(batch_size, 1)), 1))
    return int(6 * n_par * itemsize + 8 * max(n_feat * z_dim, n_par // 4) + act * itemsize)
