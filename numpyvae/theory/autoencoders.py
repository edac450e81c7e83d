"""Deterministic autoencoders and PCA, the baseline every VAE is compared with.

An autoencoder squeezes x (B, D) through a code h = f(x) (B, d) and maps it back
to x_hat = g(h) (B, D). Its objective here is the plain squared error, WITHOUT a
factor 1/2, summed over pixels and averaged over the batch:

    loss = (1/B) sum_b ||x_b - x_hat_b||^2  [+ penalties, also averaged over B]

so ``AETerms.recon`` is the mean per-example sum of squared errors. Options turn
the plain autoencoder into the variants of the lecture notes
("Variational autoencoders", university course notes: autoencoders, PCA as an
autoencoder, sparse / denoising / contractive autoencoders):

* linear autoencoder (``hidden=()``, identity activations): its optimum spans
  the top-d principal subspace, i.e. it is PCA (see :func:`pca`);
* sparse: ``sparsity * (1/B) sum_b sum_j |h_bj|`` (L1 on the code);
* denoising: the encoder sees a corrupted copy x_tilde (Gaussian noise
  ``noise_std`` and/or masking ``mask_prob``), the loss compares with clean x;
* contractive: ``contractive * (1/B) sum_b ||d h_b / d x_b||_F^2`` in closed
  form for a one-layer sigmoid encoder.

Every gradient is written by hand; tests/test_autoencoders.py checks each one
against central differences in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validate
from ..data import iterate_minibatches
from .._flat import bind_flat
from ..layers import ACTIVATIONS, MLP, Linear, make_activation
from ..optim import Adam

__all__ = ["pca", "pca_reconstruct", "Autoencoder", "AETerms", "fit"]



# --------------------------------------------------------------------------- helpers
def _nonneg_float(name, v, upper=None):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a non-negative number, got {v!r}")
    v = float(v)
    if not np.isfinite(v) or v < 0 or (upper is not None and v >= upper):
        rng = f"[0, {upper})" if upper is not None else ">= 0"
        raise ValueError(f"{name} must be a finite number in {rng}, got {v!r}")
    return v


def _real_matrix(name, x, cols=None):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    if x.ndim != 2 or (cols is not None and x.shape[1] != cols):
        want = f"(B, {cols})" if cols is not None else "(N, D)"
        raise ValueError(f"{name} must have shape {want}, got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one row, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


# --------------------------------------------------------------------------- PCA
def pca(x, d):
    """Principal component analysis by the SVD of the centred data.

    x: (N, D); d: number of components, 1 <= d <= min(N, D).
    Returns (mean (D,), components (D, d), explained_variance (d,)):
    the columns of ``components`` are orthonormal, ordered by decreasing
    variance; ``explained_variance[k]`` = s_k^2 / (N - 1) (the sample variance
    of the data along column k; 0 when N = 1). Each column's sign is fixed so its
    largest-magnitude entry is positive (the SVD alone leaves it arbitrary).
    By Eckart-Young, x ~ mean + (x - mean) C C^T is the best rank-d affine
    reconstruction in summed squared error.

    Derivation: derivations/11_autoencoders.md, eq. (11.2)
    """
    x = _real_matrix("x", x).astype(np.float64)
    N, D = x.shape
    d = _validate.int_in_range("d", d, 1, min(N, D))   # at most min(N, D) components
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:d].T.copy()
    # deterministic signs: largest |entry| of each column positive
    big = np.argmax(np.abs(comps), axis=0)
    comps *= np.sign(comps[big, np.arange(d)])
    var = s[:d] ** 2 / max(N - 1, 1)
    return mean, comps, var


def pca_reconstruct(x, mean, components):
    """Project onto the principal subspace and map back: mean + (x - mean) C C^T.

    x: (B, D); mean: (D,); components C: (D, d) with orthonormal columns
    (as returned by :func:`pca`). Returns (B, D).

    Derivation: derivations/11_autoencoders.md, eq. (11.2)
    """
    mean = np.asarray(mean, dtype=np.float64)
    components = np.asarray(components, dtype=np.float64)
    if mean.ndim != 1:
        raise ValueError(f"mean must have shape (D,), got {mean.shape}")
    D = mean.shape[0]
    if components.ndim != 2 or components.shape[0] != D:
        raise ValueError(f"components must have shape ({D}, d), got {components.shape}")
    x = _real_matrix("x", x, cols=D).astype(np.float64)
    code = (x - mean) @ components
    return mean + code @ components.T


# --------------------------------------------------------------------------- autoencoder
@dataclass
class AETerms:
    """What one ``Autoencoder.forward`` computed (means over the batch).

    loss: the differentiated objective, recon + penalty.
    recon: (1/B) sum_b ||x_b - x_hat_b||^2 (no factor 1/2).
    penalty: the weighted regulariser, sparse_term + contractive_term below.
    sparse: unweighted (1/B) sum_b sum_j |h_bj| (0 when sparsity = 0).
    contractive: unweighted (1/B) sum_b ||J_f(x_tilde_b)||_F^2 (0 when contractive = 0).
    Arrays: recon_per_example (B,), code h (B, d), x_hat (B, D), x_tilde (B, D)
    (the encoder's input: x itself unless the autoencoder is denoising).

    Derivation: derivations/11_autoencoders.md, eq. (11.1)
    """
    loss: float
    recon: float
    penalty: float
    sparse: float
    contractive: float
    recon_per_example: np.ndarray
    code: np.ndarray
    x_hat: np.ndarray
    x_tilde: np.ndarray


class Autoencoder:
    """A deterministic autoencoder x -> h = f(x) -> x_hat = g(h), hand-written backward.

    Encoder f: an MLP trunk (x_dim,) + hidden with ``activation``, then a Linear
    "enc.code" to ``code_dim`` followed by ``code_activation`` (default: the same
    as ``activation``). Decoder g: an MLP trunk (code_dim,) + reversed(hidden)
    with ``activation``, then a Linear "dec.out" to ``x_dim`` followed by
    ``out_activation`` (default "identity"; "sigmoid" suits grey levels).
    Parameter names: "enc.0.W", "enc.0.b", ..., "enc.code.W", "enc.code.b",
    "dec.0.W", ..., "dec.out.W", "dec.out.b" (W: (D_in, D_out), b: (D_out,)).
    ``tied=True`` (only with ``hidden=()``) reuses the encoder's weight in the
    decoder, x_hat = out(h W^T + c): there is then no "dec.out.W".

    hidden=() with identity activations is the linear autoencoder, whose
    optimum spans the PCA subspace. Options (all weights >= 0, all off by default):
    noise_std / mask_prob: denoising (Gaussian noise / each pixel zeroed with
    probability mask_prob, no rescaling; both may be combined: mask, then add
    noise); sparsity: L1 weight on the code; contractive: weight on the squared
    Frobenius norm of the encoder Jacobian (needs hidden=() and a sigmoid code).

    ``params``/``grads``: name -> live views into ``flat_params``/``flat_grads``
    (so ``opt.step(ae.flat_params, ae.flat_grads)`` trains it). ``rng``: the
    generator used for corruption when ``forward`` is given none.

    Derivation: derivations/11_autoencoders.md, eq. (11.1)
    Derivation: derivations/11_autoencoders.md, eq. (11.2)
    """

    def __init__(self, x_dim, code_dim, hidden=(), activation="identity",
                 code_activation=None, out_activation="identity", seed=0,
                 dtype=np.float64, tied=False, noise_std=0.0, mask_prob=0.0,
                 sparsity=0.0, contractive=0.0):
        x_dim = _validate.positive_int("x_dim", x_dim)
        code_dim = _validate.positive_int("code_dim", code_dim)
        hidden = _validate.int_sizes("hidden", hidden)
        code_activation = activation if code_activation is None else code_activation
        for name, act in (("activation", activation), ("code_activation", code_activation),
                          ("out_activation", out_activation)):
            if act not in ACTIVATIONS:
                raise ValueError(f"{name} must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        dtype = _validate.float_dtype(dtype)
        seed = _validate.seed(seed)
        if not isinstance(tied, (bool, np.bool_)):
            raise ValueError(f"tied must be True or False, got {tied!r}")
        if tied and hidden:
            raise ValueError(f"tied=True needs hidden=() (one weight matrix each way), got hidden={hidden}")
        self.noise_std = _nonneg_float("noise_std", noise_std)
        self.mask_prob = _nonneg_float("mask_prob", mask_prob, upper=1.0)
        self.sparsity = _nonneg_float("sparsity", sparsity)
        self.contractive = _nonneg_float("contractive", contractive)
        if self.contractive and (hidden or code_activation != "sigmoid"):
            raise ValueError("contractive > 0 needs the one-layer sigmoid encoder "
                             "h = sigmoid(x W + b): hidden=() and code_activation='sigmoid' "
                             f"(got hidden={hidden}, code_activation={code_activation!r})")

        self.x_dim, self.code_dim, self.hidden = x_dim, code_dim, hidden
        self.activation, self.code_activation = activation, code_activation
        self.out_activation, self.tied = out_activation, bool(tied)
        self.seed, self.dtype = int(seed), dtype

        init_rng, noise_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(2))
        self.rng = noise_rng
        kinked = ("relu", "leaky_relu")
        self.enc = MLP((x_dim,) + hidden, activation, init_rng, dtype)
        h_enc = hidden[-1] if hidden else x_dim
        self.enc_code = Linear(h_enc, code_dim, init_rng,
                               "he" if code_activation in kinked else "glorot", dtype)
        self.code_act = make_activation(code_activation)
        self.dec = MLP((code_dim,) + hidden[::-1], activation, init_rng, dtype)
        h_dec = hidden[0] if hidden else code_dim
        self.dec_out = Linear(h_dec, x_dim, init_rng, "glorot", dtype)
        self.out_act = make_activation(out_activation)
        # nobody needs dL/dx of the encoder's first Linear
        (self.enc.linears[:1] or [self.enc_code])[0].input_grad = False
        self._bind_flat_buffers()
        self._cache = None

    # ------------------------------------------------------------------ setup
    def _named_linears(self):
        named = [(f"enc.{n}", lin) for n, lin in self.enc.layers()]
        named += [("enc.code", self.enc_code)]
        named += [(f"dec.{n}", lin) for n, lin in self.dec.layers()]
        named += [("dec.out", self.dec_out)]
        return named

    def _bind_flat_buffers(self):
        # Same layout idea as model.VAE: every W, b (and dW, db) becomes a view of
        # one flat array, so an optimizer updates everything in one vectorised step.
        # With tied weights the decoder's W is a transposed view of the encoder's
        # and its dW a private scratch array, added into "enc.code.W" in backward.
        entries = [(f"{name}.{p}", lin, p) for name, lin in self._named_linears()
                   for p in ("W", "b") if not (self.tied and lin is self.dec_out and p == "W")]
        self.flat_params, self.flat_grads, self.params, self.grads = bind_flat(entries, self.dtype)
        if self.tied:
            self.dec_out.W = self.enc_code.W.T
            self.dec_out.dW = np.zeros_like(self.dec_out.W)

    @property
    def config(self) -> dict:
        """JSON-able settings; ``Autoencoder(**cfg)`` rebuilds the architecture (fresh params).

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        """
        return {"x_dim": self.x_dim, "code_dim": self.code_dim, "hidden": list(self.hidden),
                "activation": self.activation, "code_activation": self.code_activation,
                "out_activation": self.out_activation, "seed": self.seed,
                "dtype": self.dtype.name, "tied": self.tied, "noise_std": self.noise_std,
                "mask_prob": self.mask_prob, "sparsity": self.sparsity,
                "contractive": self.contractive}

    def copy(self, dtype=None) -> Autoencoder:
        """An independent copy (parameters and corruption-RNG state), optionally in ``dtype``.

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        """
        cfg = self.config
        cfg["hidden"] = tuple(cfg["hidden"])
        if dtype is not None:
            cfg["dtype"] = np.dtype(dtype).name
        new = Autoencoder(**cfg)
        new.flat_params[...] = self.flat_params
        new.rng.bit_generator.state = self.rng.bit_generator.state
        return new

    def _check_x(self, x, name="x"):
        return _real_matrix(name, x, cols=self.x_dim).astype(self.dtype, copy=False)

    # ---------------------------------------------------------------- pieces
    def encode(self, x):
        """The code h = f(x): x (B, D) -> (B, d). Never corrupts x.

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        """
        x = self._check_x(x)
        return self.code_act.forward(self.enc_code.forward(self.enc.forward(x)))

    def decode(self, h):
        """x_hat = g(h): h (B, d) -> (B, D).

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        """
        h = _real_matrix("h", h, cols=self.code_dim).astype(self.dtype, copy=False)
        return self.out_act.forward(self.dec_out.forward(self.dec.forward(h)))

    def reconstruct(self, x):
        """g(f(x)) for x (B, D) -> (B, D), with no corruption (what a user would deploy).

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        """
        return self.decode(self.encode(x))

    def corrupt(self, x, rng=None):
        """The denoising autoencoder's input x_tilde: (B, D) -> (B, D).

        Each pixel is kept with probability 1 - mask_prob (else set to 0), then
        N(0, noise_std^2) noise is added. Returns x unchanged when both are 0.
        rng: a numpy Generator (default ``self.rng``).

        Derivation: derivations/11_autoencoders.md, eq. (11.4)
        """
        x = self._check_x(x)
        rng = self.rng if rng is None else rng
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
        if self.mask_prob:
            x = x * (rng.random(x.shape) >= self.mask_prob)
        if self.noise_std:
            x = x + self.noise_std * rng.standard_normal(x.shape)
        return x.astype(self.dtype, copy=False)

    def jacobian_penalty(self, x):
        """||J_f(x_b)||_F^2 per example for the sigmoid encoder h = sigmoid(x W + b).

        With s_j = h_j (1 - h_j) (the sigmoid's slope), J_ij = s_j W_ij, so
        ||J||_F^2 = sum_j s_j^2 sum_i W_ij^2. x: (B, D) -> (B,).
        Raises ValueError unless the encoder is that one layer (hidden=(),
        code_activation='sigmoid').

        Derivation: derivations/11_autoencoders.md, eq. (11.5)
        """
        self._require_sigmoid_encoder()
        h = self.encode(x)
        s = h * (1 - h)
        return (s * s) @ np.sum(self.enc_code.W ** 2, axis=0)

    def _require_sigmoid_encoder(self):
        if self.hidden or self.code_activation != "sigmoid":
            raise ValueError("the closed-form contractive penalty needs the one-layer sigmoid "
                             "encoder: hidden=() and code_activation='sigmoid' "
                             f"(got hidden={self.hidden}, code_activation={self.code_activation!r})")

    # ------------------------------------------------------------- objective
    def forward(self, x, rng=None, x_tilde=None) -> AETerms:
        """The training objective on a batch; keeps what ``backward`` needs.

        x: (B, D), the clean target. A denoising autoencoder feeds the encoder
        x_tilde = corrupt(x, rng) (``rng`` default ``self.rng``; pass a freshly
        seeded Generator, or ``x_tilde`` itself (B, D), to hold the noise fixed).
        Otherwise x_tilde = x.

            loss = (1/B) sum_b [ ||x_b - g(f(x_tilde_b))||^2
                                 + sparsity * sum_j |h_bj|
                                 + contractive * ||J_f(x_tilde_b)||_F^2 ]

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        Derivation: derivations/11_autoencoders.md, eq. (11.3)
        Derivation: derivations/11_autoencoders.md, eq. (11.4)
        Derivation: derivations/11_autoencoders.md, eq. (11.5)
        """
        x = self._check_x(x)
        B = x.shape[0]
        if x_tilde is not None:
            x_tilde = self._check_x(x_tilde, "x_tilde")
            if x_tilde.shape != x.shape:
                raise ValueError(f"x_tilde must have the shape of x {x.shape}, got {x_tilde.shape}")
        elif self.noise_std or self.mask_prob:
            x_tilde = self.corrupt(x, rng)
        else:
            x_tilde = x
        h = self.code_act.forward(self.enc_code.forward(self.enc.forward(x_tilde)))
        x_hat = self.out_act.forward(self.dec_out.forward(self.dec.forward(h)))
        r = x_hat - x
        recon_pe = np.sum(r * r, axis=1)
        recon = float(recon_pe.mean())
        sparse = float(np.abs(h).sum() / B) if self.sparsity else 0.0
        contr, col_sq = 0.0, None
        if self.contractive:
            s = h * (1 - h)
            col_sq = np.sum(self.enc_code.W ** 2, axis=0)      # (d,): sum_i W_ij^2
            contr = float(((s * s) @ col_sq).sum() / B)
        penalty = self.sparsity * sparse + self.contractive * contr
        self._cache = dict(B=B, r=r, h=h, col_sq=col_sq)
        return AETerms(loss=recon + penalty, recon=recon, penalty=penalty, sparse=sparse,
                       contractive=contr, recon_per_example=recon_pe, code=h, x_hat=x_hat,
                       x_tilde=x_tilde)

    def backward(self):
        """Gradients of the last ``forward``'s loss into ``grads`` (overwritten, never added).

        recon:  d/dx_hat = (2/B)(x_hat - x), then back through g to dL/dh.
        sparse: dL/dh += (sparsity/B) sign(h), with sign(0) = 0 (the subgradient
                chosen at the kink, so an exactly-zero code unit gets no push).
        contractive (a = x_tilde W + b, h = sigmoid(a), s = h(1-h), c_j = sum_i W_ij^2):
                dL/da += (contractive/B) 2 s^2 (1 - 2h) c   (through h),
                dL/dW_ij += (contractive/B) 2 W_ij sum_b s_bj^2   (W's explicit role).

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        Derivation: derivations/11_autoencoders.md, eq. (11.3)
        Derivation: derivations/11_autoencoders.md, eq. (11.5)
        """
        c = self._cache
        if c is None:
            raise RuntimeError("backward() needs a forward() first")
        B, h = c["B"], c["h"]
        d_xhat = (2.0 / B) * c["r"]
        dh = self.dec.backward(self.dec_out.backward(self.out_act.backward(d_xhat)))
        if self.sparsity:
            dh = dh + (self.sparsity / B) * np.sign(h)
        da = self.code_act.backward(dh)
        if self.contractive:
            s = h * (1 - h)
            da = da + (2.0 * self.contractive / B) * (s * s) * (1 - 2 * h) * c["col_sq"]
        dtrunk = self.enc_code.backward(da)
        if self.enc.linears:
            self.enc.backward(dtrunk)
        if self.contractive:
            s = h * (1 - h)
            self.enc_code.dW += (2.0 * self.contractive / B) * self.enc_code.W * np.sum(s * s, axis=0)
        if self.tied:
            self.enc_code.dW += self.dec_out.dW.T

    def loss(self, x, rng=None, x_tilde=None) -> float:
        """The objective of ``forward`` as a float.

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        """
        return self.forward(x, rng=rng, x_tilde=x_tilde).loss

    def loss_and_grads(self, x, rng=None, x_tilde=None):
        """(loss, {name: gradient}) with the gradients copied out of the live buffers.

        Derivation: derivations/11_autoencoders.md, eq. (11.1)
        """
        t = self.forward(x, rng=rng, x_tilde=x_tilde)
        self.backward()
        return t.loss, {k: g.copy() for k, g in self.grads.items()}

    def __repr__(self):
        extras = "".join(f", {k}={getattr(self, k)}" for k in
                         ("noise_std", "mask_prob", "sparsity", "contractive") if getattr(self, k))
        return (f"Autoencoder(x_dim={self.x_dim}, code_dim={self.code_dim}, hidden={self.hidden}, "
                f"activation={self.activation!r}, code_activation={self.code_activation!r}, "
                f"out_activation={self.out_activation!r}, tied={self.tied}{extras}, "
                f"dtype={self.dtype.name}, n_params={self.flat_params.size})")


def fit(ae, x, epochs=10, batch_size=128, lr=1e-3, seed=0):
    """Train ``ae`` in place with Adam on minibatches of x; returns the loss history.

    x: (N, D). Each epoch visits every row once in a seeded random order; the
    corruption of a denoising autoencoder is drawn from the same seeded stream,
    so a run is reproducible from ``seed``. Returns a list (length ``epochs``)
    of the example-weighted mean training loss of each epoch.

    Derivation: derivations/11_autoencoders.md, eq. (11.1)
    """
    if not isinstance(ae, Autoencoder):
        raise ValueError(f"ae must be an Autoencoder, got {type(ae).__name__}")
    x = ae._check_x(x)
    epochs = _validate.positive_int("epochs", epochs)
    batch_size = _validate.positive_int("batch_size", batch_size)
    seed = _validate.seed(seed)
    opt = Adam(lr=lr)
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(epochs):
        total = 0.0
        for xb in iterate_minibatches(x, batch_size, rng):
            t = ae.forward(xb, rng=rng)
            ae.backward()
            opt.step(ae.flat_params, ae.flat_grads)
            total += t.loss * len(xb)
        history.append(total / len(x))
    return history
