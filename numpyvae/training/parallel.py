"""Two or more threads for one training step: the minibatch split across model replicas.

A VAE step on a laptop-sized model is a few small matrix products plus elementwise work
(activations, the likelihood, Adam). A multi-threaded BLAS speeds up only the products, and
on a busy machine its threads wait for each other and can make a step many times slower.
``SplitStep`` instead splits the minibatch into ``n`` parts and runs each part's forward and
backward on its own thread, every thread calling a one-thread BLAS: all the work runs in
parallel, and a busy core only slows the one part that runs on it.

Why the result is the same step: the loss is a mean over the batch of per-example terms, so
its gradient is the size-weighted mean of the parts' gradients,

    dL/dtheta = sum_i (B_i / B) dL_i/dtheta,

and the noise eps (K, B, Z) is drawn once, from the model's own generator, exactly as
``VAE.forward`` would draw it, then cut along B. The replicas share the model's parameter
buffer (views, no copies) and keep their own layer caches and gradient buffers. The numbers
agree with the one-thread step up to the order of floating-point additions
(``tests/test_parallel.py``).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..model import Terms
from ..reparam import sample_eps

__all__ = ["SplitStep", "split_sizes", "MIN_ROWS"]

#: a part smaller than this many decoder rows (K * B_i) costs more in overhead than it saves
MIN_ROWS = 32
_BATCH_AXIS_0 = ("elbo_per_example", "recon_per_example", "kl_per_example", "mu", "logvar", "off")
_BATCH_AXIS_1 = ("log_px_z", "z", "eps", "log_w")


def split_sizes(batch: int, k: int, threads: int) -> list[int]:
    """How ``SplitStep`` cuts a batch of ``batch`` examples with ``k`` samples each: at most
    ``threads`` parts, none with fewer than ``MIN_ROWS`` decoder rows (one part if none can)."""
    n = max(1, min(int(threads), (batch * k) // MIN_ROWS, batch))
    base, extra = divmod(batch, n)
    return [base + (i < extra) for i in range(n)]


def _replica(vae: Any) -> Any:
    """A copy of ``vae`` whose W and b are views of ``vae``'s parameter buffer; its layer
    caches and gradient buffer are its own."""
    rep = vae.copy()
    for name, lin in rep._named_linears():
        for p in ("W", "b"):
            setattr(lin, p, vae.params[f"{name}.{p}"])
    rep.flat_params, rep.params = vae.flat_params, dict(vae.params)
    return rep


class SplitStep:
    """forward + backward of ``vae`` on one minibatch, split across ``threads`` threads.

    ``step(xb, k=, beta=, kl=)`` leaves the full-batch gradient in ``vae.flat_grads`` and
    returns the full-batch ``Terms``, like ``vae.forward(xb, ...)`` then ``vae.backward()``.
    ``pool`` is the thread pool, for an optimizer that splits its update too. Use it as a
    context manager (or call ``close``) to stop the threads.
    """

    def __init__(self, vae: Any, threads: int):
        if not (isinstance(threads, int) and threads >= 1):
            raise ValueError(f"threads: expected a positive integer, got {threads!r}")
        if not hasattr(vae, "_named_linears"):
            raise TypeError(f"SplitStep works with a VAE, got {type(vae).__name__}")
        self.vae, self.threads = vae, threads
        self.replicas = [vae] + [_replica(vae) for _ in range(threads - 1)]
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="numpyvae-step")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def __enter__(self) -> SplitStep:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def step(self, xb: np.ndarray, *, k: int = 1, beta: float = 1.0, kl: str = "closed") -> Terms:
        vae = self.vae
        B = xb.shape[0]
        sizes = split_sizes(B, k, self.threads)
        if len(sizes) == 1:
            t = vae.forward(xb, eps=None, k=k, beta=beta, kl=kl)
            vae.backward()
            return t
        eps = sample_eps(vae.rng, k, B, vae.z_dim, vae.dtype)    # the draw forward would make
        edges = np.cumsum([0] + sizes)
        parts = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]

        err = np.geterr()        # NumPy's error state is per thread: the caller's applies

        def run(i: int) -> Terms:
            rep, s = self.replicas[i], parts[i]
            with np.errstate(**err):
                t = rep.forward(xb[s], eps=eps[:, s], k=k, beta=beta, kl=kl)
                rep.backward()
            return t

        terms = list(self.pool.map(run, range(len(parts))))
        w = [n / B for n in sizes]
        g = vae.flat_grads
        g *= w[0]
        for wi, rep in zip(w[1:], self.replicas[1:len(parts)]):
            rep.flat_grads *= wi     # in place: the replica's gradient is rewritten next step anyway
            g += rep.flat_grads
        return _join(terms, w)


def _join(terms: list[Terms], w: list[float]) -> Terms:
    """One ``Terms`` for the whole batch: means weighted by part size, arrays concatenated."""
    first = terms[0]
    out: dict[str, Any] = {"beta": first.beta, "objective": first.objective}
    for name in ("loss", "elbo", "recon", "kl"):
        out[name] = float(sum(wi * getattr(t, name) for wi, t in zip(w, terms)))
    for name in _BATCH_AXIS_0 + _BATCH_AXIS_1:
        arrays = [getattr(t, name) for t in terms]
        out[name] = None if arrays[0] is None else np.concatenate(arrays, axis=0 if name in _BATCH_AXIS_0 else 1)
    return Terms(**out)
