"""The variational autoencoder: encoder -> reparameterize -> decoder -> likelihood + KL.

Loss convention, used everywhere in numpyvae: sum over pixels and latent
dimensions, mean over the K Monte Carlo samples and over the batch, in nats.
``Terms.loss`` is exactly the number that ``VAE.backward`` differentiates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kl import kl_monte_carlo, kl_normal_std, kl_normal_std_grad
from .layers import ACTIVATIONS, MLP, Linear
from .likelihoods import LIKELIHOODS, make_likelihood
from .reparam import reparameterize, reparameterize_backward, sample_eps
from . import _rng, _validate

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

    Derivation: derivations/02_elbo.md, eq. (2.7)
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


class VAE:
    """A Gaussian-encoder VAE built from hand-written layers.

    Encoder q(z|x) = N(mu(x), diag exp(logvar(x))) (Shah, Eq. 6): an MLP trunk
    with two linear heads. Prior p(z) = N(0, I) (Shah, Eq. 4). Decoder: an MLP
    trunk with a linear head giving Bernoulli logits, a Gaussian mean with fixed
    variance c (Shah, Eq. 5), or a mean and a log-variance ("gaussian_learned").
    ``hidden=()`` makes every map linear; with likelihood="gaussian" that is the
    linear-Gaussian (probabilistic PCA) model. ``init="default"`` draws weights He/Glorot
    normal with zero biases; ``init="uniform"`` draws every W and b from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch's nn.Linear does (benchmarks/bench_quality.py).

    Parameters live in one flat buffer ``flat_params``; ``params[name]`` are views
    into it, so editing ``vae.params["enc.0.W"]`` in place edits the model.
    Gradients likewise live in ``flat_grads`` / ``grads``.

    Derivation: derivations/01_generative_model.md, eq. (1.1)
    Derivation: derivations/02_elbo.md, eq. (2.5)
    """

    def __init__(self, x_dim, z_dim, hidden=(400,), likelihood="bernoulli",
                 activation="relu", c=1.0, seed=0, dtype=np.float64, init="default"):
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
        if init not in ("default", "uniform"):
            raise ValueError(f"init must be 'default' or 'uniform', got {init!r}")
        self.init = init
        head_init, trunk_init = ("glorot", None) if init == "default" else ("uniform", "uniform")

        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.activation, self.likelihood_name = activation, likelihood
        self.c, self.seed, self.dtype = float(c), int(seed), dtype
        self.lik = make_likelihood(likelihood, c)

        # weights and sampling noise come from their own named streams of `seed`; the
        # trainer draws its shuffles and binarization from other streams of the same seed
        init_rng = _rng.generator(seed, "init")
        self.rng = _rng.generator(seed, "sample")

        h_enc = hidden[-1] if hidden else x_dim
        h_dec = hidden[0] if hidden else z_dim
        self.enc = MLP((x_dim,) + hidden, activation, init_rng, dtype, trunk_init)
        self.enc_mu = Linear(h_enc, z_dim, init_rng, head_init, dtype)
        self.enc_logvar = Linear(h_enc, z_dim, init_rng, head_init, dtype)
        self.dec = MLP((z_dim,) + hidden[::-1], activation, init_rng, dtype, trunk_init)
        self.dec_out = Linear(h_dec, x_dim, init_rng, head_init, dtype)
        self.dec_logvar = (Linear(h_dec, x_dim, init_rng, head_init, dtype)
                           if likelihood == "gaussian_learned" else None)
        # the encoder never needs dL/dx: skip that matmul on the first layer(s)
        for lin in (self.enc.linears[:1] or [self.enc_mu, self.enc_logvar]):
            lin.input_grad = False

        self._bind_flat_buffers()
        self._cache = None
        self.dmu = self.dlogvar = None

    # ------------------------------------------------------------------ setup
    def _named_linears(self):
        named = [(f"enc.{n}", lin) for n, lin in self.enc.layers()]
        named += [("enc.mu", self.enc_mu), ("enc.logvar", self.enc_logvar)]
        named += [(f"dec.{n}", lin) for n, lin in self.dec.layers()]
        named += [("dec.out", self.dec_out)]
        if self.dec_logvar is not None:
            named += [("dec.logvar", self.dec_logvar)]
        return named

    def _bind_flat_buffers(self):
        """Move every W and b (and dW, db) into views of two flat arrays.

        One flat buffer lets an optimizer update all parameters in a few
        vectorised operations instead of a loop over many small arrays.
        """
        named = self._named_linears()
        total = sum(lin.W.size + lin.b.size for _, lin in named)
        self.flat_params = np.empty(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.params, self.grads = {}, {}
        o = 0
        for name, lin in named:
            for p in ("W", "b"):
                arr = getattr(lin, p)
                view = self.flat_params[o:o + arr.size].reshape(arr.shape)
                view[...] = arr
                gview = self.flat_grads[o:o + arr.size].reshape(arr.shape)
                setattr(lin, p, view)
                setattr(lin, "d" + p, gview)
                self.params[f"{name}.{p}"] = view
                self.grads[f"{name}.{p}"] = gview
                o += arr.size
        self._enc_slice = slice(0, sum(self.params[n].size for n in self.params
                                       if n.startswith("enc.")))

    @property
    def config(self) -> dict:
        """JSON-able settings that rebuild this architecture with ``VAE.from_config``."""
        return {"x_dim": self.x_dim, "z_dim": self.z_dim, "hidden": list(self.hidden),
                "likelihood": self.likelihood_name, "activation": self.activation,
                "c": self.c, "seed": self.seed, "dtype": self.dtype.name, "init": self.init}

    @classmethod
    def from_config(cls, cfg: dict) -> "VAE":
        """A freshly initialised VAE with the settings in ``cfg`` (see ``config``)."""
        cfg = dict(cfg)
        cfg["hidden"] = tuple(cfg.get("hidden", ()))
        return cls(**cfg)

    def copy(self, dtype=None) -> "VAE":
        """An independent copy (parameters and sampling-RNG state), optionally in ``dtype``."""
        cfg = self.config
        if dtype is not None:
            cfg["dtype"] = np.dtype(dtype).name
        new = type(self).from_config(cfg)   # a subclass copies as itself
        new.flat_params[...] = self.flat_params
        new.rng.bit_generator.state = self.rng.bit_generator.state
        return new

    def astype(self, dtype) -> "VAE":
        """A copy of this model whose parameters and computations use ``dtype``."""
        return self.copy(dtype)

    def state_dict(self) -> dict:
        """Copies of the parameters by name."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Set the parameters from ``state`` (same names and shapes as ``params``)."""
        missing = set(self.params) - set(state)
        extra = set(state) - set(self.params)
        if missing or extra:
            raise ValueError(f"state does not match this model: missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}")
        for k, v in state.items():
            v = np.asarray(v)
            if v.shape != self.params[k].shape:
                raise ValueError(f"parameter {k!r} must have shape {self.params[k].shape}, "
                                 f"got {v.shape}")
            self.params[k][...] = v

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
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or inf")
        if self.likelihood_name == "bernoulli" and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1] for the Bernoulli likelihood, "
                             f"got values in [{x.min()}, {x.max()}]")
        return x

    def _check_z(self, z):
        z = np.asarray(z, dtype=self.dtype)
        if z.ndim < 1 or z.shape[-1] != self.z_dim:
            raise ValueError(f"z must have shape (..., {self.z_dim}), got {z.shape}")
        return z

    # ---------------------------------------------------------------- pieces
    def encode(self, x):
        """q(z|x) parameters: x (B, D) -> (mu, logvar), each (B, Z).

        Derivation: derivations/02_elbo.md, eq. (2.5)
        """
        return self._encode(self._check_x(x))

    def decode(self, z):
        """p(x|z) parameters for z (..., Z): logits | mean | (mean, logvar), each (..., D).

        Derivation: derivations/01_generative_model.md, eq. (1.5)
        """
        z = self._check_z(z)
        outs = self._decode_flat(z.reshape(-1, self.z_dim))
        outs = tuple(o.reshape(z.shape[:-1] + (self.x_dim,)) for o in outs)
        return outs if len(outs) > 1 else outs[0]

    def _decode_flat(self, zf):
        h = self.dec.forward(zf)
        outs = (self.dec_out.forward(h),)
        if self.dec_logvar is not None:
            outs += (self.dec_logvar.forward(h),)
        return outs

    def _decode_backward(self, douts):
        dh = self.dec_out.backward(douts[0])
        if self.dec_logvar is not None:
            dh = dh + self.dec_logvar.backward(douts[1])
        return self.dec.backward(dh)

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
        mu, _ = self.encode(x)
        return self.decode_mean(mu)

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
        return logp, self._decode_backward(douts).reshape(K, B, self.z_dim)

    # ------------------------------------------------------------- objective
    def forward(self, x, eps=None, k=1, beta=1.0, kl="closed", q=None) -> Terms:
        """Negative ELBO with K Monte Carlo samples; keeps what ``backward`` needs.

        x: (B, D). eps: (K, B, Z) or None (drawn from ``self.rng``; then k sets K).
        beta weights the KL (beta = 1 is the ELBO). kl="closed" uses the
        closed form, kl="mc" the single-sample estimate log q(z|x) - log p(z) at
        each z. q=(mu, logvar) replaces the encoder's output (decoder-only
        objective, used for per-example inference).

        per example:  loss_b = -(1/K) sum_k log p(x_b | z_kb) + beta * KL_b
        returned:     loss = (1/B) sum_b loss_b

        Derivation: derivations/02_elbo.md, eq. (2.5)
        Derivation: derivations/02_elbo.md, eq. (2.8)
        """
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

        The five steps of note 02, eq. (2.9): likelihood -> decoder -> reparameterization
        -> KL -> encoder. Also sets ``self.dmu``, ``self.dlogvar`` (B, Z).

        Derivation: derivations/02_elbo.md, eq. (2.9)
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

    def loss(self, x, eps=None, k=1, beta=1.0, kl="closed") -> float:
        """Negative ELBO (beta-weighted), mean over the batch, in nats.

        Derivation: derivations/02_elbo.md, eq. (2.7)
        """
        return self.forward(x, eps=eps, k=k, beta=beta, kl=kl).loss

    def loss_and_grads(self, x, eps=None, k=1, beta=1.0, kl="closed"):
        """(loss, {name: gradient}) with the gradients copied out of the live buffers.

        Derivation: derivations/02_elbo.md, eq. (2.7)
        """
        t = self.forward(x, eps=eps, k=k, beta=beta, kl=kl)
        self.backward()
        return t.loss, {k_: g.copy() for k_, g in self.grads.items()}

    def __repr__(self):
        return (f"VAE(x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, "
                f"likelihood={self.likelihood_name!r}, activation={self.activation!r}, "
                f"dtype={self.dtype.name}, n_params={self.flat_params.size})")
