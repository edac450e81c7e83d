"""The flat-buffer plumbing every model shares: parameters as views of one array.

``bind_flat`` moves every parameter (and its gradient) of a model's layers into views of two
flat arrays, so an optimizer updates a whole model in a few vectorised operations;
``FlatParams`` gives such a model ``copy``, ``astype``, ``state_dict`` and
``load_state_dict``; ``DecoderHeads`` is the decoder pass (an MLP trunk and one or two linear
heads) the VAE and the VQ-VAE share. Bookkeeping, not mathematics: no equation here.
"""
from __future__ import annotations

import numpy as np

from . import _registry

__all__ = ["bind_flat", "FlatParams", "DecoderHeads"]


def bind_flat(entries, dtype, flat_params=None, flat_grads=None):
    """Make every parameter (and its gradient) a view of one flat array.

    entries: (name, owner, attr) triples; ``owner.attr`` is replaced by a view into
    ``flat_params`` and ``owner.d<attr>`` by the matching view into ``flat_grads``.
    One flat buffer lets an optimizer update all parameters in a few vectorised
    operations instead of a loop over many small arrays. ``flat_params`` and
    ``flat_grads`` may be given (1-D, the total size; a training split puts them in
    shared memory): the parameters' values are copied into the first, the second is
    zeroed. Returns (flat_params, flat_grads, params, grads), the last two ``{name: view}``.
    """
    total = sum(getattr(owner, attr).size for _, owner, attr in entries)
    for name, buf in (("flat_params", flat_params), ("flat_grads", flat_grads)):
        if buf is not None and buf.shape != (total,):
            raise ValueError(f"{name}: expected shape ({total},), got {buf.shape}")
    flat_params = np.empty(total, dtype=dtype) if flat_params is None else flat_params
    if flat_grads is None:
        flat_grads = np.zeros(total, dtype=dtype)
    else:
        flat_grads[...] = 0
    params, grads = {}, {}
    o = 0
    for name, owner, attr in entries:
        arr = getattr(owner, attr)
        view = flat_params[o:o + arr.size].reshape(arr.shape)
        view[...] = arr
        gview = flat_grads[o:o + arr.size].reshape(arr.shape)
        setattr(owner, attr, view)
        setattr(owner, "d" + attr, gview)
        params[name], grads[name] = view, gview
        o += arr.size
    return flat_params, flat_grads, params, grads


class DecoderHeads:
    """The decoder pass VAE and VQVAE share: an MLP trunk ``dec``, a head ``dec_out`` and, for a
    learned-variance Gaussian, a second head ``dec_logvar`` (else None) on the same hidden layer."""

    def _decode_flat(self, zf):
        """zf: (N, Z) -> the heads' outputs, each (N, D)."""
        h = self.dec.forward(zf)
        outs = (self.dec_out.forward(h),)
        if self.dec_logvar is not None:
            outs += (self.dec_logvar.forward(h),)
        return outs

    def _decode_backward(self, douts):
        """d loss / d heads' outputs -> d loss / d zf; both heads feed the trunk's last layer."""
        dh = self.dec_out.backward(douts[0])
        if self.dec_logvar is not None:
            dh = dh + self.dec_logvar.backward(douts[1])
        return self.dec.backward(dh)


class FlatParams:
    """What every model whose parameters live in one flat buffer shares (VAE, VQVAE, ...).

    The model provides ``config`` (with its registered ``"model"`` kind), ``params`` (views
    into ``flat_params``) and ``rng``; these methods need nothing else.
    """

    @classmethod
    def from_config(cls, cfg: dict):
        """A freshly initialised model with the settings in ``cfg`` (see ``config``); the
        config's ``"model"`` kind picks the class (``numpyvae/_registry.py``)."""
        return _registry.from_config(cfg, default=getattr(cls, "kind", "vae"), cls=cls)

    def copy(self, dtype=None):
        """An independent copy (parameters and sampling-RNG state), optionally in ``dtype``."""
        cfg = self.config
        if dtype is not None:
            cfg["dtype"] = np.dtype(dtype).name
        new = type(self).from_config(cfg)
        new.flat_params[...] = self.flat_params
        new.rng.bit_generator.state = self.rng.bit_generator.state
        return new

    def astype(self, dtype):
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
