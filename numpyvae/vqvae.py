"""VQ-VAE: an MLP encoder, a codebook, nearest-neighbour quantization, a decoder.

x (B, D) -> encoder -> z_e (B, M, d): M code vectors of dimension d per image
         -> nearest codebook entry e_j, j in 0..K-1, for each of them -> z_q (B, M, d)
         -> decoder reads z_q flattened (B, M*d) -> p(x | z_q)

loss_b = -log p(x_b | z_q) + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2   (sums over M, d)
loss   = (1/B) sum_b loss_b, in nats, like ``VAE``.

The argmin has no derivative, so the backward copies the decoder's gradient at z_q onto z_e
(the straight-through estimator): a surrogate, not the derivative of the loss. Note 10 says
which parts a finite-difference check can verify (``VQVAE.checkable_params``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _rng, _validate
from . import _registry
from ._flat import DecoderHeads, FlatParams, bind_flat
from .layers import ACTIVATIONS, MLP, Linear
from .likelihoods import LIKELIHOODS, make_likelihood

__all__ = ["PARTS", "VQVAE", "VQTerms", "perplexity", "nearest_codes", "vq_surrogate_loss",
           "quantize_backward"]

PARTS = ("loss", "recon", "codebook", "commitment")


def perplexity(indices, codebook_size):
    """exp(entropy) of the code usage: K when every code is used equally, 1 for one code.

    indices: integer array of any shape with entries in 0..K-1 -> float.

    Derivation: derivations/10_model_family.md, eq. (10.17)
    """
    counts = np.bincount(np.asarray(indices).reshape(-1), minlength=codebook_size)
    p = counts / max(counts.sum(), 1)
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def nearest_codes(z_e, codebook):
    """The nearest codebook entry for each code vector.

    z_e: (B, M, d); codebook: (K, d) -> (indices (B, M), z_q = codebook[indices] (B, M, d)).

    Derivation: derivations/10_model_family.md, eq. (10.11)
    """
    dist = (np.sum(z_e * z_e, axis=-1)[..., None] - 2 * z_e @ codebook.T
            + np.sum(codebook * codebook, axis=-1))         # ||z_e - e_j||^2: (B, M, K)
    idx = np.argmin(dist, axis=-1)
    return idx, codebook[idx]


def vq_surrogate_loss(dz_q, z_e, codebook, sg_z_e, sg_codebook, beta):
    """The number whose exact gradient the quantizer's backward returns (a scalar).

    A stop-gradient sg[a] is a copy of a that the derivative does not see: here the
    arguments sg_z_e and sg_codebook (equal to z_e and codebook in value). The codes come
    from the copies, k = argmin_j ||sg[z_e] - e_j||^2, and with e = codebook[k]:

        z_st = z_e + sg[z_q - z_e]                       (value z_q; the straight-through copy)
        loss = sum(dz_q * z_st) + (1/B) sum_b ( ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 )

    dz_q (B, M, d), the decoder's gradient at z_q, stands in for the reconstruction term
    (its first-order part). z_e, sg_z_e: (B, M, d); codebook, sg_codebook: (K, d).

    Derivation: derivations/10_model_family.md, eq. (10.13)
    """
    B = z_e.shape[0]
    idx, sg_e = nearest_codes(sg_z_e, sg_codebook)
    e = codebook[idx]
    z_st = z_e + (sg_e - sg_z_e)
    penalty = np.sum((sg_z_e - e) ** 2) + beta * np.sum((z_e - sg_e) ** 2)
    return float(np.sum(dz_q * z_st) + penalty / B)


def quantize_backward(dz_q, z_e, codebook, beta):
    """The quantizer's backward: dL/dz_q (B, M, d) -> (dz_e (B, M, d), dcodebook (K, d)).

    Straight-through: dz_q is copied onto z_e; the commitment beta ||z_e - sg[e]||^2 moves
    z_e, the codebook term ||sg[z_e] - e||^2 moves the chosen entries (means over the batch).

    Derivation: derivations/10_model_family.md, eq. (10.13)
    """
    B = z_e.shape[0]
    idx, z_q = nearest_codes(z_e, codebook)
    dz_e = dz_q + (2 * beta / B) * (z_e - z_q)                  # copy + commitment
    dcodebook = np.zeros_like(codebook)
    np.add.at(dcodebook, idx.reshape(-1),                       # entries used twice add up
              ((2 / B) * (z_q - z_e)).reshape(-1, codebook.shape[1]))
    return dz_e, dcodebook


@dataclass
class VQTerms:
    """What one ``VQVAE.forward`` computed; means over the batch, in nats.

    loss: the differentiated number (the ``part`` asked for; all of it by default).
    recon: -log p(x | z_q). codebook: ||sg[z_e] - e||^2. commitment: beta ||z_e - sg[e]||^2.
    kl: M log K, the constant KL to a uniform prior over codes; elbo = -(recon + kl).
    indices (B, M): the chosen codes; z_e, z_q (B, M, d).

    Derivation: derivations/10_model_family.md, eq. (10.12)
    """
    loss: float
    recon: float
    codebook: float
    commitment: float
    kl: float
    elbo: float
    beta: float
    part: str
    recon_per_example: np.ndarray
    elbo_per_example: np.ndarray
    indices: np.ndarray
    z_e: np.ndarray
    z_q: np.ndarray


class _Codebook:
    """The K x d table of code vectors, held like a layer's weight (W, dW)."""

    def __init__(self, K, d, rng, dtype):
        self.W = rng.standard_normal((K, d)).astype(dtype)
        self.dW = np.zeros_like(self.W)


@_registry.register("vqvae")
class VQVAE(DecoderHeads, FlatParams):
    """Vector-quantized VAE (van den Oord, Vinyals & Kavukcuoglu 2017) with MLPs.

    x_dim: D; n_codes: M code vectors per image; code_dim: d; codebook_size: K entries;
    hidden: the encoder's MLP widths (the decoder mirrors them); beta: the commitment
    weight. Same contract as ``VAE``: ``forward`` / ``backward`` / ``params`` / ``grads`` /
    ``flat_params`` / ``flat_grads`` / ``config`` / ``copy``.

    Derivation: derivations/10_model_family.md, eq. (10.11)
    Derivation: derivations/10_model_family.md, eq. (10.12)
    """
    stochastic = False      # no sampling noise: gradcheck.check_model passes no eps
    train_options = ()      # forward takes none of the trainer's k, beta, kl
    needs_labels = False
    #: the per-epoch validation numbers ``val_extras`` adds to a run's history
    VAL_COLUMNS = ("codebook", "perplexity", "codes_used")

    def __init__(self, x_dim, n_codes=4, code_dim=2, codebook_size=16, hidden=(256,),
                 likelihood="bernoulli", activation="relu", beta=0.25, c=1.0, seed=0,
                 dtype=np.float64):
        x_dim = _validate.positive_int("x_dim", x_dim)
        n_codes = _validate.positive_int("n_codes", n_codes)
        code_dim = _validate.positive_int("code_dim", code_dim)
        codebook_size = _validate.positive_int("codebook_size", codebook_size)
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        hidden = tuple(_validate.positive_int("hidden sizes", h) for h in hidden)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if not np.isfinite(beta) or beta < 0:
            raise ValueError(f"beta (the commitment weight) must be a non-negative number, got {beta!r}")
        dtype = _validate.float_dtype(dtype)
        seed = _validate.seed(seed)
        self.x_dim, self.n_codes, self.code_dim, self.codebook_size = (
            x_dim, n_codes, code_dim, codebook_size)
        self.hidden, self.likelihood_name, self.activation = hidden, likelihood, activation
        self.beta, self.c, self.seed, self.dtype = float(beta), float(c), int(seed), dtype
        self.lik = make_likelihood(likelihood, c)
        init_rng = _rng.generator(seed, "init")
        self.rng = _rng.generator(seed, "sample")

        Md = n_codes * code_dim
        h_enc = hidden[-1] if hidden else x_dim
        h_dec = hidden[0] if hidden else Md
        self.enc = MLP((x_dim,) + hidden, activation, init_rng, dtype)
        self.enc_out = Linear(h_enc, Md, init_rng, "glorot", dtype)
        self.codebook = _Codebook(codebook_size, code_dim, init_rng, dtype)
        self.dec = MLP((Md,) + hidden[::-1], activation, init_rng, dtype)
        self.dec_out = Linear(h_dec, x_dim, init_rng, "glorot", dtype)
        self.dec_logvar = (Linear(h_dec, x_dim, init_rng, "glorot", dtype)
                           if likelihood == "gaussian_learned" else None)
        (self.enc.linears[:1] or [self.enc_out])[0].input_grad = False
        self._bind_flat_buffers()
        self._cache = None

    # ------------------------------------------------------------------ setup
    def _named(self):
        named = [(f"enc.{n}", lin, ("W", "b")) for n, lin in self.enc.layers()]
        named += [("enc.out", self.enc_out, ("W", "b")), ("codebook", self.codebook, ("W",))]
        named += [(f"dec.{n}", lin, ("W", "b")) for n, lin in self.dec.layers()]
        named += [("dec.out", self.dec_out, ("W", "b"))]
        if self.dec_logvar is not None:
            named += [("dec.logvar", self.dec_logvar, ("W", "b"))]
        return named

    def _bind_flat_buffers(self):
        """Every parameter (and its gradient) becomes a view of one flat array, as in VAE."""
        entries = [(name if name == "codebook" else f"{name}.{p}", obj, p)
                   for name, obj, ps in self._named() for p in ps]
        self.flat_params, self.flat_grads, self.params, self.grads = bind_flat(entries, self.dtype)

    @property
    def config(self) -> dict:
        """JSON-able settings that rebuild this architecture with ``from_config``."""
        return {"model": "vqvae", "x_dim": self.x_dim, "n_codes": self.n_codes,
                "code_dim": self.code_dim, "codebook_size": self.codebook_size,
                "hidden": list(self.hidden), "likelihood": self.likelihood_name,
                "activation": self.activation, "beta": self.beta, "c": self.c,
                "seed": self.seed, "dtype": self.dtype.name}

    def _check_x(self, x, name="x"):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.x_dim or x.shape[0] == 0:
            raise ValueError(f"{name} must have shape (B, {self.x_dim}) with B >= 1, got {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or inf")
        if self.likelihood_name == "bernoulli" and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1] for the Bernoulli likelihood, "
                             f"got values in [{x.min()}, {x.max()}]")
        return x

    # ---------------------------------------------------------------- pieces
    def _encode(self, x):
        return self.enc_out.forward(self.enc.forward(x)).reshape(-1, self.n_codes, self.code_dim)

    def _distances(self, z_e):
        """Squared distances ||z_e - e_j||^2: z_e (B, M, d) -> (B, M, K)."""
        E = self.codebook.W
        return (np.sum(z_e * z_e, axis=-1)[..., None] - 2 * z_e @ E.T
                + np.sum(E * E, axis=-1))

    def quantize(self, z_e):
        """Nearest codebook entry for each code vector: z_e (B, M, d) -> (indices (B, M), z_q).

        Derivation: derivations/10_model_family.md, eq. (10.11)
        """
        return nearest_codes(z_e, self.codebook.W)

    def quantization_margin(self, x):
        """Smallest gap between the nearest and second-nearest squared distance over x (B, D).

        A finite-difference step that moves z_e by less than this keeps every assignment.
        """
        d = np.sort(self._distances(self._encode(self._check_x(x))), axis=-1)
        return float(np.min(d[..., 1] - d[..., 0])) if self.codebook_size > 1 else np.inf

    def encode(self, x):
        """The codes of x (B, D): indices (B, M) into the codebook.

        Derivation: derivations/10_model_family.md, eq. (10.11)
        """
        return self.quantize(self._encode(self._check_x(x)))[0]


    def decode_mean(self, indices):
        """Mean of p(x | z_q) for codes ``indices`` (B, M) -> (B, D).

        Derivation: derivations/10_model_family.md, eq. (10.11)
        """
        idx = np.asarray(indices)
        if idx.ndim != 2 or idx.shape[1] != self.n_codes:
            raise ValueError(f"indices must have shape (B, {self.n_codes}), got {idx.shape}")
        if not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= self.codebook_size:
            raise ValueError(f"indices must be integers in 0..{self.codebook_size - 1}")
        outs = self._decode_flat(self.codebook.W[idx].reshape(idx.shape[0], -1))
        return self.lik.mean(*outs)

    def reconstruct(self, x):
        """The decoder mean at the quantized codes of x: (B, D) -> (B, D).

        Derivation: derivations/10_model_family.md, eq. (10.11)
        """
        return self.decode_mean(self.encode(x))

    def fit_prior(self, x, alpha=1.0):
        """A simple prior over codes: independent categoricals per position, from the code
        frequencies on x (B, D) with add-alpha smoothing. -> probs (M, K).

        Derivation: derivations/10_model_family.md, eq. (10.18)
        """
        idx = self.encode(x)
        counts = np.stack([np.bincount(idx[:, m], minlength=self.codebook_size)
                           for m in range(self.n_codes)]).astype(np.float64)
        return (counts + alpha) / (counts + alpha).sum(axis=1, keepdims=True)

    def sample(self, n, prior=None, rng=None):
        """Draw codes from ``prior`` (M, K) (uniform if None), then the decoder mean. -> (n, D).

        Derivation: derivations/10_model_family.md, eq. (10.18)
        """
        n = _validate.positive_int("n", n)
        rng = self.rng if rng is None else rng
        M, K = self.n_codes, self.codebook_size
        prior = np.full((M, K), 1.0 / K) if prior is None else np.asarray(prior, np.float64)
        if prior.shape != (M, K):
            raise ValueError(f"prior must have shape ({M}, {K}), got {prior.shape}")
        cdf = np.cumsum(prior, axis=1)
        u = rng.random((n, M, 1)) * cdf[:, -1:]
        idx = np.minimum((u > cdf).sum(axis=-1), K - 1)
        return self.decode_mean(idx)

    def init_codebook(self, x, rng=None):
        """Set the codebook to K encoder outputs z_e drawn from x (B, D) (fewer dead codes).

        Derivation: derivations/10_model_family.md, eq. (10.17)
        """
        rng = self.rng if rng is None else rng
        z_e = self._encode(self._check_x(x)).reshape(-1, self.code_dim)
        pick = rng.choice(z_e.shape[0], self.codebook_size, replace=z_e.shape[0] < self.codebook_size)
        self.codebook.W[...] = z_e[pick]

    # ------------------------------------------------------------- objective
    def forward(self, x, part="loss") -> VQTerms:
        """The VQ-VAE loss (or one ``part`` of it); keeps what ``backward`` needs.

        x: (B, D). part: "loss" (all three terms), "recon", "codebook" or "commitment":
        the term ``loss`` reports and ``backward`` differentiates.

        Derivation: derivations/10_model_family.md, eq. (10.11)
        Derivation: derivations/10_model_family.md, eq. (10.12)
        """
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        x = self._check_x(x)
        B = x.shape[0]
        z_e = self._encode(x)                                    # (B, M, d)
        idx, z_q = self.quantize(z_e)                            # nearest neighbours
        outs = self._decode_flat(z_q.reshape(B, -1))
        recon = -self.lik.log_prob(x, *outs)                     # (B,)
        sq = np.sum((z_e - z_q) ** 2, axis=(1, 2))               # ||z_e - e||^2 per example
        terms = {"recon": recon, "codebook": sq, "commitment": self.beta * sq}
        loss_pe = (recon + sq + self.beta * sq) if part == "loss" else terms[part]
        self._cache = dict(x=x, z_e=z_e, z_q=z_q, idx=idx, outs=outs, part=part)
        kl = self.n_codes * np.log(self.codebook_size)           # uniform prior, eq. (10.15)
        return VQTerms(loss=float(loss_pe.mean()), recon=float(recon.mean()),
                       codebook=float(sq.mean()), commitment=float(self.beta * sq.mean()),
                       kl=float(kl), elbo=float(-(recon.mean() + kl)), beta=self.beta,
                       part=part, recon_per_example=recon, elbo_per_example=-(recon + kl),
                       indices=idx, z_e=z_e, z_q=z_q)

    def backward(self):
        """Surrogate gradients of the last ``forward``'s part; overwrites ``grads``.

        recon: the decoder's exact gradient, and its gradient at z_q copied onto z_e
        (straight-through); codebook: 2 (e - z_e) / B into the chosen entries (z_e held fixed);
        commitment: 2 beta (z_e - e) / B into the encoder (e held fixed).

        Derivation: derivations/10_model_family.md, eq. (10.13)
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError("backward() needs a forward() first")
        x, z_e, z_q, idx, part = (cache[n] for n in ("x", "z_e", "z_q", "idx", "part"))
        B = x.shape[0]
        self.flat_grads[...] = 0
        dz_q = np.zeros_like(z_q)
        if part in ("loss", "recon"):
            # 1. likelihood and decoder, back to the decoder's input z_q
            douts = [-d / B for d in self.lik.grad(x, *cache["outs"])]
            dz_q = self._decode_backward(douts).reshape(z_q.shape)
        # 2.-4. the quantizer: straight-through copy of dz_q onto z_e, commitment
        #    beta ||z_e - sg[e]||^2 into the encoder, codebook ||sg[z_e] - e||^2 into the entries
        beta = self.beta if part in ("loss", "commitment") else 0.0
        dz_e, dcodebook = quantize_backward(dz_q, z_e, self.codebook.W, beta)
        if part in ("loss", "codebook"):
            self.codebook.dW[...] = dcodebook
        if part != "codebook":
            # 5. encoder
            dh = self.enc_out.backward(dz_e.reshape(B, -1))
            if self.enc.linears:
                self.enc.backward(dh)

    def checkable_params(self, part="loss"):
        """The parameters whose ``backward`` gradient of ``part`` is the true derivative
        (where no assignment switches), so finite differences can grade them.

        Derivation: derivations/10_model_family.md, eq. (10.16)
        """
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        dec = [n for n in self.params if n.startswith("dec.")]
        enc = [n for n in self.params if n.startswith("enc.")]
        return {"loss": dec, "recon": dec, "codebook": dec + ["codebook"],
                "commitment": dec + enc}[part]

    def val_extras(self, terms):
        """The codebook's use over the batches' ``VQTerms``: mean codebook term, perplexity
        and the number of entries used (the trainer adds them to the history).

        Derivation: derivations/10_model_family.md, eq. (10.17)
        """
        idx = np.concatenate([t.indices for t in terms])
        n = sum(t.indices.shape[0] for t in terms)
        return {"codebook": float(sum(t.codebook * t.indices.shape[0] for t in terms) / n),
                "perplexity": perplexity(idx, self.codebook_size),
                "codes_used": int(np.unique(idx).size)}

    def loss(self, x, part="loss") -> float:
        """The loss (or one part), mean over the batch, in nats.

        Derivation: derivations/10_model_family.md, eq. (10.12)
        """
        return self.forward(x, part=part).loss

    def __repr__(self):
        return (f"VQVAE(x_dim={self.x_dim}, n_codes={self.n_codes}, code_dim={self.code_dim}, "
                f"codebook_size={self.codebook_size}, hidden={self.hidden}, beta={self.beta}, "
                f"likelihood={self.likelihood_name!r}, n_params={self.flat_params.size})")
