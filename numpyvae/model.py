"""The variational autoencoder: encoder -> reparameterize -> decoder -> likelihood + KL.

Loss convention, used everywhere in numpyvae: sum over pixels and latent
dimensions, mean over the K Monte Carlo samples and over the batch, in nats.
``Terms.loss`` is exactly the number that ``VAE.backward`` differentiates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kl import (kl_full_std, kl_full_std_grad, kl_monte_carlo, kl_normal_std,
                 kl_normal_std_grad, log_std_normal)
from .layers import ACTIVATIONS, MLP, Linear, _bind_flat, _DecoderHeads, _FlatParams
from .likelihoods import LIKELIHOODS, make_likelihood
from .reparam import (reparameterize, reparameterize_backward, reparameterize_full,
                      reparameterize_full_backward, sample_eps, tril_factor)
from . import _rng, _validate

__all__ = ["VAE", "Terms", "POSTERIORS", "OBJECTIVES", "iwae_bound", "iwae_bound_backward"]

POSTERIORS = ("diag", "full")
OBJECTIVES = ("elbo", "iwae")


def iwae_bound(log_w):
    """The K-sample bound per example, L_K = log (1/K) sum_k exp(log w_k), computed stably.

    log_w: (K, B) log importance weights -> (B,).

    Derivation: derivations/10_model_family.md, eq. (10.1)
    """
    K = log_w.shape[0]
    m = log_w.max(axis=0)                         # stable log-sum-exp: exp never overflows
    return m + np.log(np.sum(np.exp(log_w - m), axis=0)) - np.log(K)


def iwae_bound_backward(dbound, log_w):
    """Carry dL/dL_K (B,) back to dL/dlog_w (K, B) through ``iwae_bound``.

    The derivative of a log-sum-exp is the softmax over k, the normalized weights w~_k.
    A weight below eps^2 (the dtype's machine epsilon squared) of the largest is set to zero:
    it cannot change a float sum of K terms, and in float32 many such weights are subnormal
    numbers, which made every product they entered slower (an IWAE step 3x, note 10).

    Derivation: derivations/10_model_family.md, eq. (10.2)
    """
    w = np.exp(log_w - log_w.max(axis=0))         # shifted: the same softmax, no overflow
    w[w < np.finfo(w.dtype).eps ** 2] = 0
    w_tilde = w / w.sum(axis=0)
    return dbound * w_tilde


@dataclass
class Terms:
    """What one ``VAE.forward`` computed. Means are over the batch, in nats.

    loss: the differentiated objective, mean of recon + beta * kl.
    elbo: the beta = 1 ELBO, -(recon + kl) (reported beside the objective when beta != 1).
    recon: the reconstruction cost -E_q log p(x|z): mean over the batch of the K-sample
      average of -log p(x|z). A cost, like ``loss`` and ``kl``: lower is better. The same
      name means the same number in ``history.csv`` (``train_recon``, ``val_recon``), in
      ``evaluate`` and in the CLI's output.
    kl: mean KL(q(z|x) || p(z)) (closed form or Monte Carlo).
    Per-example arrays: elbo_per_example, recon_per_example, kl_per_example (B,);
    log_px_z (K, B); mu, logvar (B, Z); z, eps (K, B, Z).

    Derivation: derivations/03_elbo.md, eq. (3.8)
    """
    loss: float
    elbo: float
    recon: float
    kl: float
    beta: float
    elbo_per_example: np.ndarray
    recon_per_example: np.ndarray
    kl_per_example: np.ndarray
    log_px_z: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray
    z: np.ndarray
    eps: np.ndarray
    objective: str = "elbo"
    log_w: np.ndarray = None   # (K, B) log importance weights (the model-family path)
    off: np.ndarray = None     # (B, Z(Z-1)/2) strictly lower entries of L (posterior="full")


class VAE(_DecoderHeads, _FlatParams):
    """A Gaussian-encoder VAE built from hand-written layers.

    Encoder q(z|x) = N(mu(x), diag exp(logvar(x))) (Shah, Eq. 6): an MLP trunk
    with two linear heads. Prior p(z) = N(0, I) (Shah, Eq. 4). Decoder: an MLP
    trunk with a linear head giving Bernoulli logits, a Gaussian mean with fixed
    variance c (Shah, Eq. 5), or a mean and a log-variance ("gaussian_learned").
    ``hidden=()`` makes every map linear; with likelihood="gaussian" that is the
    linear-Gaussian (probabilistic PCA) model. ``init="uniform"`` (the default) draws every
    W and b from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch's nn.Linear does: at equal
    budget it trains about a nat better on binarized MNIST than ``init="he"`` (He normal for
    ReLU trunks, Glorot normal otherwise, zero biases), see benchmarks/bench_quality.py and
    note 06, eq. (6.14).

    The model family (note 10): ``posterior="full"`` adds a head for the strictly
    lower entries of a Cholesky factor L (q = N(mu, L L^T), diagonal L_ii = exp(logvar/2));
    ``n_classes=C`` makes a conditional VAE, q(z|x, y) and p(x|z, y), with the one-hot
    label concatenated to the encoder's input and to z; ``forward(..., objective="iwae")``
    trains the importance-weighted bound.

    Parameters live in one flat buffer ``flat_params``; ``params[name]`` are views
    into it, so editing ``vae.params["enc.0.W"]`` in place edits the model.
    Gradients likewise live in ``flat_grads`` / ``grads``.

    Derivation: derivations/01_generative_model.md, eq. (1.1)
    Derivation: derivations/03_elbo.md, eq. (3.6)
    Derivation: derivations/10_model_family.md, eq. (10.5)
    Derivation: derivations/10_model_family.md, eq. (10.9)
    """

    def __init__(self, x_dim, z_dim, hidden=(400,), likelihood="bernoulli",
                 activation="relu", c=1.0, seed=0, dtype=np.float64, posterior="diag",
                 n_classes=None, objective="elbo", init="uniform"):
        x_dim = _validate.positive_int("x_dim", x_dim)
        z_dim = _validate.positive_int("z_dim", z_dim)
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        hidden = tuple(_validate.positive_int("hidden sizes", h) for h in hidden)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        dtype = _validate.float_dtype(dtype)
        seed = _validate.seed(seed)
        if posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {POSTERIORS}, got {posterior!r}")
        n_classes = None if n_classes is None else _validate.positive_int("n_classes", n_classes)
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        # posterior, labels and the training objective are part of the model's record
        self.posterior, self.n_classes, self.objective = posterior, n_classes, objective
        n_y = n_classes or 0     # the one-hot label widens the encoder's and decoder's inputs
        if init not in ("uniform", "he"):
            raise ValueError(f"init must be 'uniform' or 'he', got {init!r}")
        self.init = init
        head_init, trunk_init = ("glorot", None) if init == "he" else ("uniform", "uniform")

        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.activation, self.likelihood_name = activation, likelihood
        self.c, self.seed, self.dtype = float(c), int(seed), dtype
        self.lik = make_likelihood(likelihood, c)

        # weights and sampling noise come from their own named streams of `seed`; the
        # trainer draws its shuffles and binarization from other streams of the same seed
        init_rng = _rng.generator(seed, "init")
        self.rng = _rng.generator(seed, "sample")

        h_enc = hidden[-1] if hidden else x_dim + n_y
        h_dec = hidden[0] if hidden else z_dim + n_y
        self.enc = MLP((x_dim + n_y,) + hidden, activation, init_rng, dtype, trunk_init)
        self.enc_mu = Linear(h_enc, z_dim, init_rng, head_init, dtype)
        self.enc_logvar = Linear(h_enc, z_dim, init_rng, head_init, dtype)
        # posterior="full": the strictly lower triangle of L, started at zero (= diagonal q)
        self.enc_off = (Linear(h_enc, z_dim * (z_dim - 1) // 2, init_rng, head_init, dtype)
                        if posterior == "full" else None)
        if self.enc_off is not None:
            self.enc_off.W[...] = 0
            self.enc_off.b[...] = 0
        self.dec = MLP((z_dim + n_y,) + hidden[::-1], activation, init_rng, dtype, trunk_init)
        self.dec_out = Linear(h_dec, x_dim, init_rng, head_init, dtype)
        self.dec_logvar = (Linear(h_dec, x_dim, init_rng, head_init, dtype)
                           if likelihood == "gaussian_learned" else None)
        # the encoder never needs dL/dx: skip that matmul on the first layer(s)
        for lin in (self.enc.linears[:1] or [self.enc_mu, self.enc_logvar, self.enc_off]):
            if lin is not None:
                lin.input_grad = False

        self._bind_flat_buffers()
        self._cache = None
        self.dmu = self.dlogvar = None

    # ------------------------------------------------------------------ setup
    def _named_linears(self):
        named = [(f"enc.{n}", lin) for n, lin in self.enc.layers()]
        named += [("enc.mu", self.enc_mu), ("enc.logvar", self.enc_logvar)]
        named += [("enc.off", self.enc_off)] if self.enc_off is not None else []
        named += [(f"dec.{n}", lin) for n, lin in self.dec.layers()]
        named += [("dec.out", self.dec_out)]
        if self.dec_logvar is not None:
            named += [("dec.logvar", self.dec_logvar)]
        return named

    def _bind_flat_buffers(self, flat_params=None, flat_grads=None):
        """Move every W and b (and dW, db) into views of two flat arrays, new ones or those
        given (see layers._bind_flat)."""
        entries = [(f"{name}.{p}", lin, p) for name, lin in self._named_linears() for p in ("W", "b")]
        self.flat_params, self.flat_grads, self.params, self.grads = _bind_flat(entries, self.dtype,
                                                                                flat_params, flat_grads)
        self._enc_slice = slice(0, sum(self.params[n].size for n in self.params
                                       if n.startswith("enc.")))

    @property
    def config(self) -> dict:
        """JSON-able settings that rebuild this architecture with ``VAE.from_config``."""
        return {"x_dim": self.x_dim, "z_dim": self.z_dim, "hidden": list(self.hidden),
                "likelihood": self.likelihood_name, "activation": self.activation,
                "c": self.c, "seed": self.seed, "dtype": self.dtype.name,
                "posterior": self.posterior, "n_classes": self.n_classes,
                "objective": self.objective, "init": self.init}

    @classmethod
    def from_config(cls, cfg: dict) -> VAE:
        """A freshly initialised VAE with the settings in ``cfg`` (see ``config``).

        A VQ-VAE's config (``"model": "vqvae"``) builds a ``numpyvae.vqvae.VQVAE``, so code
        that rebuilds models from a checkpoint's record needs no case of its own.
        """
        cfg = dict(cfg)
        if cfg.get("model") == "vqvae":
            from .vqvae import VQVAE
            return VQVAE.from_config(cfg)
        cfg["hidden"] = tuple(cfg.get("hidden", ()))
        return cls(**cfg)

    # ----------------------------------------------------------------- checks
    def _check_x(self, x, name="x"):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"{name} must have shape (B, {self.x_dim}), got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one example, got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        lo, hi = x.min(), x.max()     # a NaN anywhere makes them NaN: two passes check it all
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf")
        if self.likelihood_name == "bernoulli" and (lo < 0 or hi > 1):
            raise ValueError(f"{name} must lie in [0, 1] for the Bernoulli likelihood, "
                             f"got values in [{lo}, {hi}]")
        return x

    def _check_z(self, z):
        z = np.asarray(z, dtype=self.dtype)
        if z.ndim < 1 or z.shape[-1] != self.z_dim:
            raise ValueError(f"z must have shape (..., {self.z_dim}), got {z.shape}")
        return z

    # ---------------------------------------------------------------- pieces
    def encode(self, x, y=None):
        """q(z|x) parameters: x (B, D) -> (mu, logvar), each (B, Z).

        A conditional model needs the labels y (B,) and encodes [x, onehot(y)]. With
        posterior="full" this is the mean and the diagonal part; ``encode_full`` gives L.

        Derivation: derivations/03_elbo.md, eq. (3.6)
        """
        x = self._check_x(x)
        return self._encode(self._with_labels(x, y))

    def decode(self, z, y=None):
        """p(x|z) parameters for z (..., Z): logits | mean | (mean, logvar), each (..., D).

        A conditional model needs y: one label, or one per row of z's last batch axis.

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        z = self._check_z(z)
        zf = z.reshape(-1, self.z_dim)
        if self.n_classes or y is not None:
            yh = self._one_hot(np.broadcast_to(np.asarray(y), z.shape[:-1]).reshape(-1)
                               if y is not None else None, zf.shape[0])
            zf = np.concatenate([zf, yh], axis=1)
        outs = self._decode_flat(zf)
        outs = tuple(o.reshape(z.shape[:-1] + (self.x_dim,)) for o in outs)
        return outs if len(outs) > 1 else outs[0]

    def decode_mean(self, z, y=None):
        """Mean of p(x|z): sigmoid(logits) for Bernoulli, the Gaussian mean otherwise.

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        out = self.decode(z, y)
        return self.lik.mean(*out) if isinstance(out, tuple) else self.lik.mean(out)

    def reconstruct(self, x, y=None):
        """Deterministic reconstruction: the decoder mean at z = mu(x). x (B, D) -> (B, D).

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        mu, _ = self.encode(x, y)
        return self.decode_mean(mu, y)

    def sample(self, n, rng=None, y=None):
        """Ancestral sampling: z ~ N(0, I), then the decoder mean. -> (n, D).

        A conditional model samples p(x|z, y) for the given label(s) y.

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        n = _validate.positive_int("n", n)
        rng = self.rng if rng is None else rng
        z = rng.standard_normal((n, self.z_dim)).astype(self.dtype)
        return self.decode_mean(z, y)

    def log_px_given_z(self, x, z, grad=False, y=None):
        """log p(x|z) for x (B, D), z (K, B, Z) -> (K, B); with grad=True also d/dz (K, B, Z).

        The gradient pass reuses the decoder's backward, so it overwrites the
        decoder's entries of ``grads``.

        Derivation: derivations/05_likelihoods.md, eq. (5.1)
        """
        x = self._check_x(x)
        z = self._check_z(z)
        if z.ndim != 3 or z.shape[1] != x.shape[0]:
            raise ValueError(f"z must have shape (K, {x.shape[0]}, {self.z_dim}), got {z.shape}")
        K, B, _ = z.shape
        zin = self._decoder_input(z, self._labels_or_none(y, B))
        outs = tuple(o.reshape(K, B, self.x_dim) for o in self._decode_flat(zin))
        logp = self.lik.log_prob(x, *outs)
        if not grad:
            return logp
        douts = [d.reshape(K * B, -1) for d in self.lik.grad(x, *outs)]
        return logp, self._decode_backward(douts)[:, :self.z_dim].reshape(K, B, self.z_dim)

    # ------------------------------------------------------------- objective
    def forward(self, x, eps=None, k=1, beta=1.0, kl="closed", q=None, y=None,
                objective=None) -> Terms:
        """Negative ELBO with K Monte Carlo samples; keeps what ``backward`` needs.

        x: (B, D). eps: (K, B, Z) or None (drawn from ``self.rng``; then k sets K).
        beta weights the KL (beta = 1 is the ELBO). kl="closed" uses the
        closed form, kl="mc" the single-sample estimate log q(z|x) - log p(z) at
        each z. q=(mu, logvar) replaces the encoder's output (decoder-only
        objective, used for per-example inference).

        per example:  loss_b = -(1/K) sum_k log p(x_b | z_kb) + beta * KL_b
        returned:     loss = (1/B) sum_b loss_b

        objective="iwae" trains -log (1/K) sum_k w_k instead (note 10, eq. 10.1); None uses the
        model's own ``objective`` (set at construction, kept in ``config``); y: labels
        (B,) for a conditional model. Those, and posterior="full", take ``_family_forward``;
        the diagonal ELBO below is the plain path (a test proves the two paths agree).

        Derivation: derivations/03_elbo.md, eq. (3.6)
        Derivation: derivations/03_elbo.md, eq. (3.9)
        Derivation: derivations/10_model_family.md, eq. (10.1)
        """
        objective = self.objective if objective is None else objective
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if objective != "elbo" or self.posterior != "diag" or self.n_classes or y is not None:
            return self._family_forward(x, eps, k, beta, kl, q, y, objective)
        x, eps, q = self._forward_args(x, eps, k, beta, kl, q)
        K, B, _ = eps.shape

        mu, logvar = self._encode(x) if q is None else q     # q(z|x) = N(mu, diag e^logvar)
        z = reparameterize(mu, logvar, eps)                       # z = mu + sigma * eps
        outs = tuple(o.reshape(K, B, self.x_dim)
                     for o in self._decode_flat(z.reshape(K * B, self.z_dim)))
        log_px_z = self.lik.log_prob(x, *outs)                    # (K, B)
        recon = -log_px_z.mean(axis=0)                            # cost, (B,)
        mc = None
        if kl == "closed":
            kl_pe = kl_normal_std(mu, logvar)
        else:
            mc = kl_monte_carlo(z, mu, logvar)
            kl_pe = mc[0].mean(axis=0)
        loss = float(np.mean(recon + beta * kl_pe))

        self._cache = dict(x=x, mu=mu, logvar=logvar, eps=eps, outs=outs, beta=float(beta),
                           kl=kl, mc=mc, encoder=q is None)
        elbo_pe = -(recon + kl_pe)
        return Terms(loss=loss, elbo=float(elbo_pe.mean()), recon=float(recon.mean()),
                     kl=float(kl_pe.mean()), beta=float(beta), elbo_per_example=elbo_pe,
                     recon_per_example=recon, kl_per_example=kl_pe, log_px_z=log_px_z,
                     mu=mu, logvar=logvar, z=z, eps=eps)

    def _encode(self, x):
        """The encoder on an already checked x (B, D) -> (mu, logvar); keeps its caches."""
        h = self.enc.forward(x)
        return self.enc_mu.forward(h), self.enc_logvar.forward(h)

    def _forward_args(self, x, eps, k, beta, kl, q):
        """Check ``forward``'s arguments; draw eps when none is given. -> (x, eps, q)."""
        x = self._check_x(x)
        B = x.shape[0]
        if kl not in ("closed", "mc"):
            raise ValueError(f"kl must be 'closed' or 'mc', got {kl!r}")
        if not np.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a non-negative number, got {beta!r}")
        if q is not None:
            mu, logvar = (np.asarray(a, dtype=self.dtype) for a in q)
            if mu.shape != (B, self.z_dim) or logvar.shape != (B, self.z_dim):
                raise ValueError(f"q must be (mu, logvar), each of shape ({B}, {self.z_dim}); "
                                 f"got {mu.shape} and {logvar.shape}")
            q = (mu, logvar)
        if eps is None:
            eps = sample_eps(self.rng, _validate.positive_int("k", k), B, self.z_dim, self.dtype)
        else:
            eps = np.asarray(eps, dtype=self.dtype)
            if eps.ndim != 3 or eps.shape[1:] != (B, self.z_dim):
                raise ValueError(f"eps must have shape (K, {B}, {self.z_dim}), got {eps.shape}")
        return x, eps, q

    def backward(self):
        """Gradients of the last ``forward``'s loss; overwrites ``grads``, never adds.

        The five steps of note 07, eq. (7.1): likelihood -> decoder -> reparameterization
        -> KL -> encoder. Also sets ``self.dmu``, ``self.dlogvar`` (B, Z).

        Derivation: derivations/07_objective_backward.md, eq. (7.1)
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError("backward() needs a forward() first")
        if cache.get("family"):
            return self._family_backward()
        x, mu, logvar, eps, beta = (cache[n] for n in ("x", "mu", "logvar", "eps", "beta"))
        K, B, Z = eps.shape
        scale = 1.0 / (K * B)            # the loss averages -log p(x|z) over K and B

        # 1. likelihood: d loss / d decoder outputs
        douts = [(-scale * d).reshape(K * B, self.x_dim) for d in self.lik.grad(x, *cache["outs"])]
        # 2. decoder: back to z
        dz = self._decode_backward(douts).reshape(K, B, Z)
        # the Monte Carlo KL also depends on z, so its z-gradient joins before step 3
        if cache["kl"] == "mc":
            _, dz_kl, dmu_kl, dlogvar_kl = cache["mc"]
            dz = dz + (beta * scale) * dz_kl
        # 3. reparameterization: z = mu + sigma * eps, eps held fixed
        dmu, dlogvar = reparameterize_backward(dz, logvar, eps)
        # 4. KL: its direct dependence on (mu, logvar)
        if cache["kl"] == "closed":
            dmu_kl, dlogvar_kl = kl_normal_std_grad(mu, logvar)
            dmu += (beta / B) * dmu_kl
            dlogvar += (beta / B) * dlogvar_kl
        else:
            dmu += (beta * scale) * dmu_kl.sum(axis=0)
            dlogvar += (beta * scale) * dlogvar_kl.sum(axis=0)
        self.dmu, self.dlogvar = dmu, dlogvar
        # 5. encoder: both heads, then the shared trunk
        if cache["encoder"]:
            dh_mu = self.enc_mu.backward(dmu)
            dh_logvar = self.enc_logvar.backward(dlogvar)
            if self.enc.linears:    # with hidden=() the heads read x itself: nothing further
                self.enc.backward(dh_mu + dh_logvar)
        else:
            self.flat_grads[self._enc_slice] = 0   # the encoder took no part

    def loss(self, x, eps=None, k=1, beta=1.0, kl="closed", y=None, objective=None) -> float:
        """Negative ELBO (beta-weighted) or negative IWAE bound, mean over the batch, in nats.

        Derivation: derivations/03_elbo.md, eq. (3.8)
        Derivation: derivations/10_model_family.md, eq. (10.1)
        """
        return self.forward(x, eps=eps, k=k, beta=beta, kl=kl, y=y, objective=objective).loss

    def loss_and_grads(self, x, eps=None, k=1, beta=1.0, kl="closed", y=None, objective=None):
        """(loss, {name: gradient}) with the gradients copied out of the live buffers.

        Derivation: derivations/03_elbo.md, eq. (3.8)
        """
        t = self.forward(x, eps=eps, k=k, beta=beta, kl=kl, y=y, objective=objective)
        self.backward()
        return t.loss, {k_: g.copy() for k_, g in self.grads.items()}

    # ------------------------------------------------- the model family (note 10)
    def _one_hot(self, y, B):
        """Labels y (B,) -> one-hot rows (B, C) in the model's dtype, with clear errors."""
        if not self.n_classes:
            raise ValueError("y (labels) is only for a conditional model; build it with "
                             "VAE(..., n_classes=C)")
        if y is None:
            raise ValueError(f"this conditional VAE (n_classes={self.n_classes}) needs the "
                             f"labels y, shape ({B},)")
        y = np.asarray(y)
        if y.shape != (B,):
            raise ValueError(f"y must have shape ({B},), got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            if not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
                raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
            y = y.astype(np.int64)
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"y must hold labels in 0..{self.n_classes - 1}, "
                             f"got values in [{y.min()}, {y.max()}]")
        return np.eye(self.n_classes, dtype=self.dtype)[y]

    def _labels_or_none(self, y, B):
        return self._one_hot(y, B) if (self.n_classes or y is not None) else None

    def _with_labels(self, x, y):
        """The encoder's input: x (B, D), or [x, onehot(y)] (B, D + C) for a conditional model.

        Derivation: derivations/10_model_family.md, eq. (10.9)
        """
        yh = self._labels_or_none(y, x.shape[0])
        return x if yh is None else np.concatenate([x, yh], axis=1)

    def _decoder_input(self, z, yh):
        """z (K, B, Z) and yh (B, C) or None -> the decoder's input (K*B, Z [+ C])."""
        K, B, Z = z.shape
        zf = z.reshape(K * B, Z)
        if yh is None:
            return zf
        return np.concatenate([zf, np.broadcast_to(yh, (K,) + yh.shape).reshape(K * B, -1)], axis=1)

    def _encode_family(self, xin):
        """Trunk and heads on the checked encoder input -> (mu, logvar, off or None)."""
        h = self.enc.forward(xin)
        off = self.enc_off.forward(h) if self.enc_off is not None else None
        return self.enc_mu.forward(h), self.enc_logvar.forward(h), off

    def _encode_family_backward(self, dmu, dlogvar, doff):
        """Backward of ``_encode_family``: the heads, then the shared trunk."""
        dh = self.enc_mu.backward(dmu)
        dh_logvar = self.enc_logvar.backward(dlogvar)
        dh_off = self.enc_off.backward(doff) if self.enc_off is not None else None
        if self.enc.linears:    # with hidden=() the heads read the input itself
            self.enc.backward(dh + dh_logvar + (0 if dh_off is None else dh_off))

    def encode_full(self, x, y=None):
        """q(z|x) = N(mu, L L^T): x (B, D) -> mu (B, Z), L (B, Z, Z) lower-triangular.

        For posterior="diag" L is diagonal, exp(logvar / 2).

        Derivation: derivations/10_model_family.md, eq. (10.5)
        """
        x = self._check_x(x)
        mu, logvar, off = self._encode_family(self._with_labels(x, y))
        if off is None:
            off = np.zeros((x.shape[0], self.z_dim * (self.z_dim - 1) // 2), self.dtype)
        return mu, tril_factor(logvar, off)

    def log_weights(self, x, eps, y=None):
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) at z_k = mu + L eps_k. -> (K, B).

        Works for every posterior and for conditional models (q(z|x, y), p(x|z, y)).

        Derivation: derivations/10_model_family.md, eq. (10.1)
        """
        return self._family_forward(x, eps, 1, 1.0, "mc", None, y, "iwae").log_w

    def _family_forward(self, x, eps, k, beta, kl, q, y, objective):
        """ELBO or IWAE loss for any posterior, conditional or not; keeps the backward's cache.

        log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), where at z = mu + L eps the
        density is log q = log N(eps; 0, I) - log det L and log det L = sum(logvar) / 2.
        IWAE:  loss_b = -(logsumexp_k log w_kb - log K), computed stably.
        ELBO:  loss_b = -(1/K) sum_k log p(x|z_kb) + beta * KL_b (closed form or Monte Carlo).
        For the IWAE, ``Terms.recon``, ``kl`` and ``elbo`` are the K-sample ELBO's pieces
        (Monte Carlo KL) from the same samples, reported beside the bound.

        Derivation: derivations/10_model_family.md, eq. (10.1)
        Derivation: derivations/10_model_family.md, eq. (10.5)
        """
        if q is not None:
            raise ValueError("q= (a fixed diagonal proposal) works with the diagonal, "
                             "unconditional ELBO only")
        x, eps, _ = self._forward_args(x, eps, k, beta, kl, None)
        if objective == "iwae" and beta != 1.0:
            raise ValueError(f"beta weights the ELBO's KL; objective='iwae' needs beta=1, got {beta!r}")
        K, B, Z = eps.shape
        yh = self._labels_or_none(y, B)
        mu, logvar, off = self._encode_family(x if yh is None else np.concatenate([x, yh], axis=1))
        z = (reparameterize(mu, logvar, eps) if off is None          # z = mu + sigma * eps
             else reparameterize_full(mu, logvar, off, eps))          # z = mu + L eps
        outs = tuple(o.reshape(K, B, self.x_dim)
                     for o in self._decode_flat(self._decoder_input(z, yh)))
        log_px_z = self.lik.log_prob(x, *outs)                        # (K, B)
        log_qz = log_std_normal(eps) - 0.5 * logvar.sum(axis=-1)      # log N(eps) - log det L
        log_pz = log_std_normal(z)
        log_w = log_px_z + log_pz - log_qz                            # (K, B)
        recon = -log_px_z.mean(axis=0)
        kl_mc = (log_qz - log_pz).mean(axis=0)
        if objective == "iwae":
            kl_pe = kl_mc
            loss_pe = -iwae_bound(log_w)                              # -(logsumexp - log K)
        else:
            if kl == "closed":
                kl_pe = kl_normal_std(mu, logvar) if off is None else kl_full_std(mu, logvar, off)
            else:
                kl_pe = kl_mc
            loss_pe = recon + beta * kl_pe
        self._cache = dict(family=True, x=x, mu=mu, logvar=logvar, off=off, eps=eps, z=z,
                           outs=outs, beta=float(beta), kl=kl, objective=objective,
                           log_w=log_w)
        elbo_pe = -(recon + kl_pe)
        return Terms(loss=float(loss_pe.mean()), elbo=float(elbo_pe.mean()),
                     recon=float(recon.mean()), kl=float(kl_pe.mean()), beta=float(beta),
                     elbo_per_example=elbo_pe, recon_per_example=recon, kl_per_example=kl_pe,
                     log_px_z=log_px_z, mu=mu, logvar=logvar, z=z, eps=eps,
                     objective=objective, log_w=log_w, off=off)

    def _family_backward(self):
        """Backward of ``_family_forward``, in the five steps of note 02.

        One form covers every case: loss = sum_kb [a_kb (-log p(x|z_kb))
        + c_kb (log q(z_kb|x) - log p(z_kb))] (+ beta/B * closed-form KL), with
        ELBO: a = 1/(KB), c = 0 (closed KL) or beta/(KB) (Monte Carlo KL);
        IWAE: a = c = w~_kb / B, the normalized importance weights.

        Derivation: derivations/10_model_family.md, eq. (10.2)
        Derivation: derivations/10_model_family.md, eq. (10.6)
        Derivation: derivations/10_model_family.md, eq. (10.10)
        """
        cache = self._cache
        x, mu, logvar, off, eps, z = (cache[n] for n in ("x", "mu", "logvar", "off", "eps", "z"))
        beta = cache["beta"]
        K, B, Z = eps.shape
        if cache["objective"] == "iwae":
            # loss = mean_b -L_K = -sum_kb a_kb log w_kb: a = dL_K/dlog w / B = w~ / B
            a = c = iwae_bound_backward(np.full(B, 1.0 / B, dtype=self.dtype), cache["log_w"])
        else:
            a = np.full((K, B), 1.0 / (K * B), dtype=self.dtype)
            c = a * beta if cache["kl"] == "mc" else np.zeros_like(a)

        # 1. likelihood, each sample weighted by a_kb
        douts = [(-a[..., None] * d).reshape(K * B, self.x_dim)
                 for d in self.lik.grad(x, *cache["outs"])]
        # 2. decoder, back to its input [z, y]; the label columns are data, not parameters:
        #    their gradient is computed by the first layer and dropped here
        dz = self._decode_backward(douts)[:, :Z].reshape(K, B, Z)
        # the sampled -log p(z) also depends on z: d/dz (z^2 / 2) = z
        dz = dz + c[..., None] * z
        # 3. reparameterization, eps held fixed
        if off is None:
            dmu, dlogvar = reparameterize_backward(dz, logvar, eps)
            doff = None
        else:
            dmu, dlogvar, doff = reparameterize_full_backward(dz, logvar, off, eps)
        # 4. KL: log q = log N(eps) - sum(logvar) / 2 depends on logvar directly ...
        dlogvar = dlogvar - 0.5 * c.sum(axis=0)[:, None]
        if cache["objective"] == "elbo" and cache["kl"] == "closed":   # ... or the closed form
            if off is None:
                dmu_kl, dlogvar_kl = kl_normal_std_grad(mu, logvar)
            else:
                dmu_kl, dlogvar_kl, doff_kl = kl_full_std_grad(mu, logvar, off)
                doff = doff + (beta / B) * doff_kl
            dmu = dmu + (beta / B) * dmu_kl
            dlogvar = dlogvar + (beta / B) * dlogvar_kl
        self.dmu, self.dlogvar, self.doff = dmu, dlogvar, doff
        # 5. encoder
        self._encode_family_backward(dmu, dlogvar, doff)

    def __repr__(self):
        extra = "" if self.posterior == "diag" else f", posterior={self.posterior!r}"
        extra += f", n_classes={self.n_classes}" if self.n_classes else ""
        extra += f", objective={self.objective!r}" if self.objective != "elbo" else ""
        return (f"VAE(x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, "
                f"likelihood={self.likelihood_name!r}, activation={self.activation!r}{extra}, "
                f"dtype={self.dtype.name}, n_params={self.flat_params.size})")
