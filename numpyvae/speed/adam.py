"""Adam's update in cache-sized blocks: the numbers of ``numpyvae.optim.Adam``, computed faster.

``optim.Adam`` writes the update as Kingma & Ba do, and every line makes a full-size temporary.
``BlockedAdam`` keeps the same state (m, v, t) and runs the update in place over blocks of
``BLOCK`` elements, whose five slices stay in the core's cache across its ten operations. The
bias corrections become two scalars: with c1 = 1 - b1^t and c2 = 1 - b2^t,

    m_hat / (sqrt(v_hat) + eps) = (sqrt(c2) / c1) * m / (sqrt(v) + eps sqrt(c2)).

``tests/test_fast_paths.py`` proves the two equal over many steps (to float rounding). A thread
pool given as ``pool`` (the split step's) cuts the update into ``workers`` pieces that run at
once: the update is elementwise, so the numbers are the same.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import optim
from ..optim import Adam

__all__ = ["BlockedAdam"]


class BlockedAdam(Adam):
    """``optim.Adam`` with the update run block by block, in place (same state, same numbers)."""

    #: elements per block: five float32 blocks of 32768 (640 KB) stay in L2
    BLOCK = 32768

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr, betas, eps, weight_decay)
        self._tmp: dict[int, np.ndarray] = {}
        self.pool: Any = None
        self.workers = 1

    @classmethod
    def like(cls, opt: Adam) -> BlockedAdam:
        """A BlockedAdam with ``opt``'s settings and a copy of its state."""
        new = cls(opt.lr, (opt.b1, opt.b2), opt.eps, opt.weight_decay)
        new.load_state_dict(opt.state_dict())
        return new

    def step(self, params, grads):
        """One Adam update of ``params`` in place from ``grads``: the blocked path."""
        if not params.flags.c_contiguous:        # flat views of params must alias it
            return super().step(params, grads)
        g = self._grad(params, grads)
        self.t += 1
        m = self._state(params.shape, params.dtype, "m")
        v = self._state(params.shape, params.dtype, "v")
        flat = (params.reshape(-1), np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1))
        n, blk = flat[0].size, self.BLOCK
        per = -(-n // max(1, self.workers) // blk) * blk     # whole blocks per piece
        if self.pool is None or per >= n:
            self.update_blocked(*flat)
        else:   # contiguous pieces of whole blocks, one per thread, each with its scratch
            pieces = [slice(i, min(i + per, n)) for i in range(0, n, per)]

            def update(j):
                self.update_blocked(*(a[pieces[j]] for a in flat), key=j)
            list(self.pool.map(update, range(len(pieces))))
        self._flush_moments(m, v)

    def _zero_tiny(self, buf, tiny):
        """``optim._flush_tiny`` a block at a time: its one-line form makes two temporaries the
        size of the buffer (|m| and the mask) on every flushing step, and in a split step's two
        processes those set the peak of each one's heap."""
        if buf.ndim != 1:
            return super()._zero_tiny(buf, tiny)
        for i in range(0, buf.size, self.BLOCK):
            optim._flush_tiny(buf[i:i + self.BLOCK], tiny)

    def update_blocked(self, theta, g, m, v, key=0):
        """The update of step ``self.t`` on 1-D arrays, in place, one block at a time (a piece
        of the buffer: the split step gives each process its half)."""
        b1, b2 = self.b1, self.b2
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        # Python floats: a NumPy float64 scalar would run every float32 operation below
        # through a float64 loop, several times slower (NEP 50)
        eps_t = float(self.eps * c2 ** 0.5)
        step = float(self.lr * c2 ** 0.5 / c1)
        a1, a2 = float(1 - b1), float(1 - b2)
        n, blk = theta.size, self.BLOCK
        tmp = self._tmp.get(key)          # one scratch block per concurrent piece
        if tmp is None or tmp.size < min(n, blk) or tmp.dtype != theta.dtype:
            tmp = self._tmp[key] = np.empty(min(n, blk), dtype=theta.dtype)
        for i in range(0, n, blk):
            j = min(i + blk, n)
            mb, vb, gb, pb, tb = m[i:j], v[i:j], g[i:j], theta[i:j], tmp[:j - i]
            np.multiply(gb, a1, out=tb)    # m <- b1 m + (1 - b1) g
            mb *= b1
            mb += tb
            np.multiply(gb, gb, out=tb)    # v <- b2 v + (1 - b2) g^2
            tb *= a2
            vb *= b2
            vb += tb
            np.sqrt(vb, out=tb)            # theta <- theta - step * m / (sqrt(v) + eps_t)
            tb += eps_t
            np.divide(mb, tb, out=tb)
            tb *= step
            pb -= tb
