"""The rest of the VAE family of note 10 as one subclass of the plain VAE: the importance-
weighted objective (IWAE), a full-covariance posterior and labels (the conditional VAE).

``FamilyVAE`` keeps the plain model's layers and adds what each member needs: a head for the
strictly lower entries of a Cholesky factor (``posterior="full"``), a one-hot label beside the
encoder's input and beside z (``n_classes=C``), and the bound ``objective="iwae"``. Its forward
and backward take one general path for every combination; on the plain case (diagonal,
unconditional ELBO) they give the plain model's numbers (``tests/test_family_units.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _registry, _validate
from .iwae import iwae_bound, iwae_bound_backward
from .kl import kl_full_std, kl_full_std_grad, kl_normal_std, kl_normal_std_grad, log_std_normal
from .layers import Linear
from .model import VAE, Terms
from .reparam import (reparameterize, reparameterize_backward, reparameterize_full,
                      reparameterize_full_backward, tril_factor)

__all__ = ["FamilyVAE", "FamilyTerms", "POSTERIORS", "OBJECTIVES"]

POSTERIORS = ("diag", "full")
OBJECTIVES = ("elbo", "iwae")


@dataclass
class FamilyTerms(Terms):
    """``Terms`` of a ``FamilyVAE.forward``, with the objective and what the family adds.

    objective: "elbo" or "iwae"; log_w: (K, B) log importance weights; off: (B, Z(Z-1)/2)
    strictly lower entries of L (posterior="full", else None). For the IWAE, ``recon``,
    ``kl`` and ``elbo`` are the K-sample ELBO's pieces (Monte Carlo KL) from the same samples.

    Derivation: derivations/10_model_family.md, eq. (10.1)
    """
    objective: str = "elbo"
    log_w: np.ndarray = None
    off: np.ndarray = None


@_registry.register("family")
class FamilyVAE(VAE):
    """The VAE with the family's options (note 10).

    ``posterior="full"`` adds a head for the strictly lower entries of a Cholesky factor L
    (q = N(mu, L L^T), diagonal L_ii = exp(logvar/2)); ``n_classes=C`` makes a conditional
    VAE, q(z|x, y) and p(x|z, y), with the one-hot label concatenated to the encoder's input
    and to z; ``objective="iwae"`` makes ``forward`` train the importance-weighted bound.
    The other arguments are ``VAE``'s.

    Derivation: derivations/10_model_family.md, eq. (10.5)
    Derivation: derivations/10_model_family.md, eq. (10.9)
    """

    def __init__(self, x_dim, z_dim, hidden=(400,), likelihood="bernoulli", activation="relu",
                 c=1.0, seed=0, dtype=np.float64, posterior="diag", n_classes=None,
                 objective="elbo", init="uniform"):
        if posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {POSTERIORS}, got {posterior!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        n_classes = None if n_classes is None else _validate.positive_int("n_classes", n_classes)
        # posterior, labels and the training objective are part of the model's record
        self.posterior, self.n_classes, self.objective = posterior, n_classes, objective
        super().__init__(x_dim, z_dim, hidden=hidden, likelihood=likelihood,
                         activation=activation, c=c, seed=seed, dtype=dtype, init=init)

    @property
    def needs_labels(self):
        """True for a conditional model: ``forward`` needs the labels y (the trainer's contract)."""
        return bool(self.n_classes)

    # ------------------------------------------------------------------ setup
    def _make_layers(self, init_rng):
        super()._make_layers(init_rng, n_y=self.n_classes or 0, extra_head=self._make_off_head)

    def _make_off_head(self, h_enc, init_rng, head_init):
        # posterior="full": the strictly lower triangle of L, started at zero (= diagonal q)
        self.enc_off = None
        if self.posterior == "full":
            z = self.z_dim
            self.enc_off = Linear(h_enc, z * (z - 1) // 2, init_rng, head_init, self.dtype)
            self.enc_off.W[...] = 0
            self.enc_off.b[...] = 0

    def _named_linears(self):
        named = super()._named_linears()
        if self.enc_off is not None:
            at = [n for n, _ in named].index("enc.logvar") + 1
            named.insert(at, ("enc.off", self.enc_off))
        return named

    @property
    def config(self) -> dict:
        """JSON-able settings that rebuild this architecture with ``from_config``."""
        return {**super().config, "posterior": self.posterior, "n_classes": self.n_classes,
                "objective": self.objective}

    def _repr_extra(self):
        extra = "" if self.posterior == "diag" else f", posterior={self.posterior!r}"
        extra += f", n_classes={self.n_classes}" if self.n_classes else ""
        return extra + (f", objective={self.objective!r}" if self.objective != "elbo" else "")

    # ---------------------------------------------------------------- labels
    def _one_hot(self, y, B):
        """Labels y (B,) -> one-hot rows (B, C) in the model's dtype, with clear errors."""
        if not self.n_classes:
            raise ValueError("y (labels) is only for a conditional model; build it with "
                             "FamilyVAE(..., n_classes=C)")
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

    # ---------------------------------------------------------------- pieces
    def encode(self, x, y=None):
        """q(z|x) parameters: x (B, D) -> (mu, logvar), each (B, Z).

        A conditional model needs the labels y (B,) and encodes [x, onehot(y)]. With
        posterior="full" this is the mean and the diagonal part; ``encode_full`` gives L.

        Derivation: derivations/10_model_family.md, eq. (10.9)
        """
        x = self._check_x(x)
        return self._encode(self._with_labels(x, y))

    def decode(self, z, y=None):
        """p(x|z) parameters for z (..., Z): logits | mean | (mean, logvar), each (..., D).

        A conditional model needs y: one label, or one per row of z's last batch axis.

        Derivation: derivations/10_model_family.md, eq. (10.9)
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
        """Mean of p(x|z, y): sigmoid(logits) for Bernoulli, the Gaussian mean otherwise.

        Derivation: derivations/10_model_family.md, eq. (10.9)
        """
        out = self.decode(z, y)
        return self.lik.mean(*out) if isinstance(out, tuple) else self.lik.mean(out)

    def reconstruct(self, x, y=None):
        """The decoder mean at z = mu(x, y). x (B, D) -> (B, D).

        Derivation: derivations/10_model_family.md, eq. (10.9)
        """
        return self.decode_mean(self.encode(x, y)[0], y)

    def sample(self, n, rng=None, y=None):
        """Ancestral sampling: z ~ N(0, I), then the decoder mean of p(x|z, y). -> (n, D).

        Derivation: derivations/10_model_family.md, eq. (10.9)
        """
        n = _validate.positive_int("n", n)
        rng = self.rng if rng is None else rng
        z = rng.standard_normal((n, self.z_dim)).astype(self.dtype)
        return self.decode_mean(z, y)

    def log_px_given_z(self, x, z, grad=False, y=None):
        """log p(x|z, y) for x (B, D), z (K, B, Z) -> (K, B); with grad=True also d/dz.

        Derivation: derivations/10_model_family.md, eq. (10.9)
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
        return self.forward(x, eps, beta=1.0, kl="mc", y=y, objective="iwae").log_w

    # ------------------------------------------------------------- objective
    def forward(self, x, eps=None, k=None, beta=1.0, kl="closed", q=None, y=None,
                objective=None) -> FamilyTerms:
        """ELBO or IWAE loss for any posterior, conditional or not; keeps the backward's cache.

        Arguments as ``VAE.forward``, and y: labels (B,) for a conditional model; objective:
        "elbo" or "iwae" (None: the model's own). q (a fixed diagonal proposal) is the plain
        model's only.

        log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), where at z = mu + L eps the
        density is log q = log N(eps; 0, I) - log det L and log det L = sum(logvar) / 2.
        IWAE:  loss_b = -L_K = -log (1/K) sum_k w_kb  (``iwae_bound``, computed stably).
        ELBO:  loss_b = -(1/K) sum_k log p(x|z_kb) + beta * KL_b (closed form or Monte Carlo).

        Derivation: derivations/10_model_family.md, eq. (10.1)
        Derivation: derivations/10_model_family.md, eq. (10.5)
        """
        objective = self.objective if objective is None else objective
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if q is not None:
            raise ValueError("q= (a fixed diagonal proposal) works with the plain VAE only")
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
            loss_pe = -iwae_bound(log_w)
        else:
            if kl == "closed":
                kl_pe = kl_normal_std(mu, logvar) if off is None else kl_full_std(mu, logvar, off)
            else:
                kl_pe = kl_mc
            loss_pe = recon + beta * kl_pe
        self._cache = dict(x=x, mu=mu, logvar=logvar, off=off, eps=eps, z=z, outs=outs,
                           beta=float(beta), kl=kl, objective=objective, log_w=log_w)
        elbo_pe = -(recon + kl_pe)
        return FamilyTerms(loss=float(loss_pe.mean()), elbo=float(elbo_pe.mean()),
                           recon=float(recon.mean()), kl=float(kl_pe.mean()), beta=float(beta),
                           elbo_per_example=elbo_pe, recon_per_example=recon,
                           kl_per_example=kl_pe, log_px_z=log_px_z, mu=mu, logvar=logvar, z=z,
                           eps=eps, objective=objective, log_w=log_w, off=off)

    def backward(self):
        """Gradients of the last ``forward``'s loss, in the five steps of note 07.

        One form covers every case: loss = sum_kb [a_kb (-log p(x|z_kb))
        + c_kb (log q(z_kb|x) - log p(z_kb))] (+ beta/B * closed-form KL), with
        ELBO: a = 1/(KB), c = 0 (closed KL) or beta/(KB) (Monte Carlo KL);
        IWAE: a = c = w~_kb / B, the normalized importance weights.

        Derivation: derivations/10_model_family.md, eq. (10.2)
        Derivation: derivations/10_model_family.md, eq. (10.6)
        Derivation: derivations/10_model_family.md, eq. (10.10)
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError("backward() needs a forward() first")
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
