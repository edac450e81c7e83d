"""The variational autoencoder of notes 03 and 07: encoder -> reparameterize -> decoder ->
likelihood + KL, and its backward in the five steps of note 07.

Loss convention, used everywhere in numpyvae: sum over pixels and latent
dimensions, mean over the K Monte Carlo samples and over the batch, in nats.
``Terms.loss`` is exactly the number that ``VAE.backward`` differentiates. The rest of the
family (IWAE, full covariance, labels) extends this model in ``numpyvae/family.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _registry, _rng, _validate
from ._flat import DecoderHeads, FlatParams, bind_flat
from .kl import kl_monte_carlo, kl_normal_std, kl_normal_std_grad, log_normal_diag, log_std_normal
from .layers import ACTIVATIONS, MLP, Linear
from .likelihoods import LIKELIHOODS, make_likelihood
from .reparam import reparameterize, reparameterize_backward, sample_eps

__all__ = ["VAE", "Terms"]


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

    Derivation: derivations/03_elbo.md, eq. (3.7)
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


@_registry.register("vae")
class VAE(DecoderHeads, FlatParams):
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

    Parameters live in one flat buffer ``flat_params``; ``params[name]`` are views
    into it, so editing ``vae.params["enc.0.W"]`` in place edits the model.
    Gradients likewise live in ``flat_grads`` / ``grads``.

    Derivation: derivations/01_generative_model.md, eq. (1.1)
    Derivation: derivations/03_elbo.md, eq. (3.5)
    """
    #: the training options ``forward`` takes (the trainer's model contract)
    train_options = ("k", "beta", "kl")
    needs_labels = False

    def __init__(self, x_dim, z_dim, hidden=(400,), likelihood="bernoulli",
                 activation="relu", c=1.0, seed=0, dtype=np.float64, init="uniform"):
        x_dim = _validate.positive_int("x_dim", x_dim)
        z_dim = _validate.positive_int("z_dim", z_dim)
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        hidden = tuple(_validate.positive_int("hidden sizes", h) for h in hidden)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if init not in ("uniform", "he"):
            raise ValueError(f"init must be 'uniform' or 'he', got {init!r}")
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.activation, self.likelihood_name, self.init = activation, likelihood, init
        self.c, self.seed = float(c), _validate.seed(seed)
        self.dtype = _validate.float_dtype(dtype)
        self.lik = make_likelihood(likelihood, c)
        # weights and sampling noise come from their own named streams of `seed`; the
        # trainer draws its shuffles and binarization from other streams of the same seed
        self.rng = _rng.generator(self.seed, "sample")
        self._make_layers(_rng.generator(self.seed, "init"))
        self._bind_flat_buffers()
        self._cache = None
        self.dmu = self.dlogvar = None

    # ------------------------------------------------------------------ setup
    def _make_layers(self, init_rng, n_y=0, extra_head=None):
        """The encoder trunk and heads, then the decoder trunk and heads, drawn in this order.

        ``n_y`` widens both inputs and ``extra_head(h_enc, init_rng, head_init)`` adds an
        encoder head after the two of q: the hooks ``numpyvae.family.FamilyVAE`` uses."""
        head_init, trunk_init = ("glorot", None) if self.init == "he" else ("uniform", "uniform")
        x_dim, z_dim, hidden, dtype = self.x_dim, self.z_dim, self.hidden, self.dtype
        h_enc = hidden[-1] if hidden else x_dim + n_y
        h_dec = hidden[0] if hidden else z_dim + n_y
        self.enc = MLP((x_dim + n_y,) + hidden, self.activation, init_rng, dtype, trunk_init)
        self.enc_mu = Linear(h_enc, z_dim, init_rng, head_init, dtype)
        self.enc_logvar = Linear(h_enc, z_dim, init_rng, head_init, dtype)
        if extra_head is not None:
            extra_head(h_enc, init_rng, head_init)
        self.dec = MLP((z_dim + n_y,) + hidden[::-1], self.activation, init_rng, dtype, trunk_init)
        self.dec_out = Linear(h_dec, x_dim, init_rng, head_init, dtype)
        self.dec_logvar = (Linear(h_dec, x_dim, init_rng, head_init, dtype)
                           if self.likelihood_name == "gaussian_learned" else None)
        # the encoder never needs dL/dx: skip that matmul on the first layer(s)
        heads = [lin for name, lin in self._named_linears() if name.startswith("enc.")]
        for lin in self.enc.linears[:1] or heads:
            lin.input_grad = False

    def _named_linears(self):
        named = [(f"enc.{n}", lin) for n, lin in self.enc.layers()]
        named += [("enc.mu", self.enc_mu), ("enc.logvar", self.enc_logvar)]
        named += [(f"dec.{n}", lin) for n, lin in self.dec.layers()]
        named += [("dec.out", self.dec_out)]
        if self.dec_logvar is not None:
            named += [("dec.logvar", self.dec_logvar)]
        return named

    def _bind_flat_buffers(self, flat_params=None, flat_grads=None):
        """Move every W and b (and dW, db) into views of two flat arrays, new ones or those
        given (see ``_flat.bind_flat``)."""
        entries = [(f"{name}.{p}", lin, p) for name, lin in self._named_linears() for p in ("W", "b")]
        self.flat_params, self.flat_grads, self.params, self.grads = bind_flat(entries, self.dtype,
                                                                               flat_params, flat_grads)
        self._enc_slice = slice(0, sum(self.params[n].size for n in self.params
                                       if n.startswith("enc.")))

    @property
    def config(self) -> dict:
        """JSON-able settings that rebuild this architecture with ``from_config``."""
        return {"model": self.kind, "x_dim": self.x_dim, "z_dim": self.z_dim,
                "hidden": list(self.hidden), "likelihood": self.likelihood_name,
                "activation": self.activation, "c": self.c, "seed": self.seed,
                "dtype": self.dtype.name, "init": self.init}

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
    def encode(self, x):
        """q(z|x) parameters: x (B, D) -> (mu, logvar), each (B, Z).

        Derivation: derivations/03_elbo.md, eq. (3.5)
        """
        return self._encode(self._check_x(x))

    def _encode(self, x):
        """The encoder on an already checked x (B, D) -> (mu, logvar); keeps its caches."""
        h = self.enc.forward(x)
        return self.enc_mu.forward(h), self.enc_logvar.forward(h)

    def decode(self, z):
        """p(x|z) parameters for z (..., Z): logits | mean | (mean, logvar), each (..., D).

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        z = self._check_z(z)
        outs = self._decode_flat(z.reshape(-1, self.z_dim))
        outs = tuple(o.reshape(z.shape[:-1] + (self.x_dim,)) for o in outs)
        return outs if len(outs) > 1 else outs[0]

    def decode_mean(self, z):
        """Mean of p(x|z): sigmoid(logits) for Bernoulli, the Gaussian mean otherwise.

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        out = self.decode(z)
        return self.lik.mean(*out) if isinstance(out, tuple) else self.lik.mean(out)

    def reconstruct(self, x):
        """Deterministic reconstruction: the decoder mean at z = mu(x). x (B, D) -> (B, D).

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        return self.decode_mean(self.encode(x)[0])

    def sample(self, n, rng=None):
        """Ancestral sampling: z ~ N(0, I), then the decoder mean. -> (n, D).

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        n = _validate.positive_int("n", n)
        rng = self.rng if rng is None else rng
        z = rng.standard_normal((n, self.z_dim)).astype(self.dtype)
        return self.decode_mean(z)

    def log_px_given_z(self, x, z, grad=False):
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
        outs = tuple(o.reshape(K, B, self.x_dim) for o in self._decode_flat(z.reshape(K * B, -1)))
        logp = self.lik.log_prob(x, *outs)
        if not grad:
            return logp
        douts = [d.reshape(K * B, -1) for d in self.lik.grad(x, *outs)]
        return logp, self._decode_backward(douts)[:, :self.z_dim].reshape(K, B, self.z_dim)

    def log_weights(self, x, eps, q=None):
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) at z_k = mu + sigma eps_k. -> (K, B).

        The importance weights of note 08; q=(mu, logvar) replaces the encoder's proposal.

        Derivation: derivations/08_importance_sampling.md, eq. (8.5)
        """
        x, eps, q = self._forward_args(x, eps, None, 1.0, "closed", q)
        mu, logvar = self._encode(x) if q is None else q
        z = reparameterize(mu, logvar, eps)
        return self.log_px_given_z(x, z) + log_std_normal(z) - log_normal_diag(z, mu, logvar)

    # ------------------------------------------------------------- objective
    def forward(self, x, eps=None, k=None, beta=1.0, kl="closed", q=None) -> Terms:
        """Negative ELBO with K Monte Carlo samples; keeps what ``backward`` needs.

        x: (B, D). eps: (K, B, Z) or None (drawn from ``self.rng``; then k sets K, default 1).
        beta weights the KL (beta = 1 is the ELBO). kl="closed" uses the
        closed form, kl="mc" the single-sample estimate log q(z|x) - log p(z) at
        each z. q=(mu, logvar) replaces the encoder's output (decoder-only
        objective, used for per-example inference).

        per example:  loss_b = -(1/K) sum_k log p(x_b | z_kb) + beta * KL_b
        returned:     loss = (1/B) sum_b loss_b

        Derivation: derivations/03_elbo.md, eq. (3.5)
        Derivation: derivations/03_elbo.md, eq. (3.8)
        """
        x, eps, q = self._forward_args(x, eps, k, beta, kl, q)
        K, B, _ = eps.shape

        mu, logvar = self._encode(x) if q is None else q          # q(z|x) = N(mu, diag e^logvar)
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
        k = None if k is None else _validate.positive_int("k", k)
        if eps is None:
            return x, sample_eps(self.rng, k or 1, B, self.z_dim, self.dtype), q
        eps = np.asarray(eps, dtype=self.dtype)
        if eps.ndim != 3 or eps.shape[1:] != (B, self.z_dim):
            raise ValueError(f"eps must have shape (K, {B}, {self.z_dim}), got {eps.shape}")
        if k is not None and eps.shape[0] != k:
            raise ValueError(f"k is {k} but eps holds {eps.shape[0]} sample(s): give one or the other")
        if not np.all(np.isfinite(eps)):
            raise ValueError("eps contains NaN or inf")
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

    def loss(self, x, eps=None, **kwargs) -> float:
        """The loss ``forward`` returns (the beta-weighted negative ELBO), mean over the batch,
        in nats; the keyword arguments are ``forward``'s.

        Derivation: derivations/03_elbo.md, eq. (3.7)
        """
        return self.forward(x, eps=eps, **kwargs).loss

    def loss_and_grads(self, x, eps=None, **kwargs):
        """(loss, {name: gradient}) with the gradients copied out of the live buffers.

        Derivation: derivations/03_elbo.md, eq. (3.7)
        """
        t = self.forward(x, eps=eps, **kwargs)
        self.backward()
        return t.loss, {k_: g.copy() for k_, g in self.grads.items()}

    def __repr__(self):
        return (f"{type(self).__name__}(x_dim={self.x_dim}, z_dim={self.z_dim}, "
                f"hidden={self.hidden}, likelihood={self.likelihood_name!r}, "
                f"activation={self.activation!r}{self._repr_extra()}, dtype={self.dtype.name}, "
                f"n_params={self.flat_params.size})")

    def _repr_extra(self):
        return ""
