"""Two or more parts of one training step at once: the minibatch split across model replicas.

A VAE step on a laptop-sized model is a few small matrix products plus elementwise work
(activations, the likelihood, Adam). A multi-threaded BLAS speeds up only the products, and
on a busy machine its threads wait for each other and can make a step many times slower.
``SplitStep`` instead splits the minibatch into ``n`` parts and runs each part's forward and
backward on its own thread, every thread calling a one-thread BLAS: all the work runs in
parallel. ``ProcessSplitStep`` does the same for two parts with a child process, which does not
share Python's interpreter lock with the parent, and splits Adam's update too; ``make_split``
picks one. With another process busy, a split step waits for the part whose core was taken:
``Governor`` measures whole steps against split ones and keeps the faster.

Why the result is the same step: the loss is a mean over the batch of per-example terms, so
its gradient is the size-weighted mean of the parts' gradients,

    dL/dtheta = sum_i (B_i / B) dL_i/dtheta,

and the noise eps (K, B, Z) is drawn once, from the model's own generator, exactly as
``VAE.forward`` would draw it, then cut along B. The replicas share the model's parameter
buffer (views, no copies) and keep their own layer caches and gradient buffers. The numbers
agree with the one-thread step up to the order of floating-point additions
(``tests/test_speed.py``).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import multiprocessing
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..model import Terms
from ..reparam import sample_eps
from ..training.trainer import TrainingStopped
from . import fused
from .adam import BlockedAdam
from .heap import keep_freed_heap, release_free_heap

__all__ = ["SplitStep", "ProcessSplitStep", "Governor", "WorkerLost", "make_split", "uses_processes",
           "split_sizes", "MIN_ROWS"]


class WorkerLost(TrainingStopped):
    """The child process of a split step died or was stopped (SIGSTOP) during a step: the run
    ends on its last finished epoch, like an interruption."""


#: seconds between looks at a child that has not answered (is it dead, or stopped?)
PATIENCE = 1.0

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


def _replica(vae: Any, flat_grads: np.ndarray | None = None) -> Any:
    """A copy of ``vae`` whose W and b are views of ``vae``'s parameter buffer; its layer
    caches and gradient buffer (new, or ``flat_grads``) are its own."""
    rep = vae.copy()
    rep._bind_flat_buffers(vae.flat_params, flat_grads)    # the copy's values: the same numbers
    if fused.attached(vae):        # the speed layer runs vae's step fused: its parts run fused too
        fused.attach(rep)
    return rep


def _shared(n: int, dtype: Any) -> np.ndarray:
    """n zeros of ``dtype`` in anonymous shared memory: a forked child sees the parent's writes."""
    dtype = np.dtype(dtype)
    return np.frombuffer(mmap.mmap(-1, max(1, n * dtype.itemsize)), dtype=dtype, count=n)


class SplitStep:
    """forward + backward of ``vae`` on one minibatch, split across ``threads`` threads.

    ``step(xb, k=, beta=, kl=)`` leaves the full-batch gradient in ``vae.flat_grads`` and
    returns the full-batch ``Terms``, like ``vae.forward(xb, ...)`` then ``vae.backward()``.
    ``pool`` is the thread pool, for an optimizer that splits its update too. ``grad_sq`` is
    the last step's g . g when the split already computed it (``ProcessSplitStep``), else None.
    Use it as a context manager (or call ``close``) to stop the threads.
    """
    grad_sq: float | None = None

    def __init__(self, vae: Any, threads: int):
        _check(vae, threads)
        self.vae, self.threads = vae, threads
        self.replicas = [vae] + [_replica(vae) for _ in range(threads - 1)]
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="numpyvae-step")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def wait(self) -> None:
        """Nothing to wait for: every part has finished when ``step`` returns."""

    def __enter__(self) -> SplitStep:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def step(self, xb: np.ndarray, *, k: int = 1, beta: float = 1.0, kl: str = "closed",
             idle: Any = None) -> Terms:
        """See the class docstring; ``idle`` is for ``ProcessSplitStep`` and not called here."""
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


def _check(vae: Any, threads: int) -> None:
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads: expected a positive integer, got {threads!r}")
    if not hasattr(vae, "_named_linears"):
        raise TypeError(f"a split step works with a VAE, got {type(vae).__name__}")


def _join(terms: list[Terms], w: list[float]) -> Terms:
    """One ``Terms`` for the whole batch: means weighted by part size, arrays concatenated."""
    first = terms[0]
    out: dict[str, Any] = {f: getattr(first, f) for f in ("beta", "objective") if hasattr(first, f)}
    for name in ("loss", "elbo", "recon", "kl"):
        out[name] = float(sum(wi * getattr(t, name) for wi, t in zip(w, terms)))
    for name in _BATCH_AXIS_0 + _BATCH_AXIS_1:
        if not hasattr(first, name):
            continue
        arrays = [getattr(t, name) for t in terms]
        out[name] = None if arrays[0] is None else np.concatenate(arrays, axis=0 if name in _BATCH_AXIS_0 else 1)
    return type(first)(**out)


def _is_shared(a: np.ndarray) -> bool:
    """Whether ``a`` is (a view of) an array made by ``_shared``."""
    while isinstance(a, np.ndarray):
        a = a.base
    return isinstance(a, memoryview) and isinstance(a.obj, mmap.mmap)


def _adam_splits(opt: Any, params: np.ndarray) -> bool:
    """Whether ``opt``'s update can be cut across processes: Adam's blocked path, no weight decay."""
    return (isinstance(opt, BlockedAdam) and not opt.weight_decay
            and params.ndim == 1 and params.flags.c_contiguous)


def _out_bytes(rows: int, k: int, z: int) -> int:
    """Room for one part's per-example arrays of ``Terms`` (the largest set: full covariance,
    IWAE's log_w), in float64, each rounded up to 8 bytes."""
    n = 3 * rows + 2 * k * rows + 2 * rows * z + 2 * k * rows * z + rows * (z * (z - 1) // 2)
    return 8 * n + 8 * len(_BATCH_AXIS_0 + _BATCH_AXIS_1)


def _send_terms(conn: Any, t: Terms, out: np.ndarray) -> None:
    """Send ``t`` through the pipe with its arrays copied into the shared bytes ``out``: only
    their places go through the pipe. Pickling the arrays instead cost the child ~0.07 ms a step."""
    places, at = {}, 0
    for name in _BATCH_AXIS_0 + _BATCH_AXIS_1:
        a = getattr(t, name, None)
        if a is None:
            continue
        a = np.asarray(a)
        if at + a.nbytes > out.size:        # does not fit (never with _out_bytes): pickle it all
            conn.send(t)
            return
        out[at:at + a.nbytes].view(a.dtype).reshape(a.shape)[...] = a
        places[name] = (a.dtype.str, a.shape, at)
        at += -(-a.nbytes // 8) * 8
    scalars = {f: getattr(t, f) for f in ("loss", "elbo", "recon", "kl", "beta", "objective") if hasattr(t, f)}
    conn.send(("terms", type(t), scalars, places))


def _read_terms(msg: Any, out: np.ndarray) -> Terms:
    """The parent's side of ``_send_terms``: a ``Terms`` whose arrays are views of ``out``
    (valid until the child's next step; ``_join`` copies them first)."""
    if isinstance(msg, Terms):
        return msg
    _, cls, scalars, places = msg
    arrays = {name: np.ndarray(shape, dt, buffer=out, offset=at) for name, (dt, shape, at) in places.items()}
    return cls(**scalars, **arrays)


class _Pipe:
    """One process's end of two OS pipes (one each way): whole pickled messages, length first.

    multiprocessing's ``Connection`` took ~25 us to carry a message from one process to the
    other while the receiver polled it (its ``poll`` builds a selector on every call); these
    raw pipes, polled with ``select``, take ~8 us, and a step sends six messages.
    """

    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(struct.pack("<Q", len(data)) + data)
        while view:
            view = view[os.write(self.wfd, view):]

    def poll(self) -> bool:
        return bool(select.select([self.rfd], [], [], 0)[0])

    def wait(self, seconds: float) -> bool:
        """Whether a message arrives within ``seconds``."""
        return bool(select.select([self.rfd], [], [], seconds)[0])

    def recv(self) -> Any:
        (n,) = struct.unpack("<Q", self._read(8))
        return pickle.loads(self._read(n))

    def _read(self, n: int) -> bytes:
        chunks = []
        while n:
            b = os.read(self.rfd, n)
            if not b:           # every write end is closed: the other process is gone
                raise EOFError
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


def _pipe_pair() -> tuple[_Pipe, _Pipe]:
    """Two connected ends: what one sends the other receives."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    return _Pipe(r1, w2), _Pipe(r2, w1)


class _Worker:
    """One child process and its shared buffers: its part of x and eps in, its gradient and
    per-example results out."""

    def __init__(self, ctx: Any, vae: Any, rows: int, k: int, shared: dict):
        d, z = vae.x_dim, vae.z_dim
        self.x = _shared(rows * d, vae.dtype).reshape(rows, d)
        self.eps = _shared(k * rows * z, vae.dtype).reshape(k, rows, z)
        self.out = _shared(_out_bytes(rows, k, z), np.uint8)
        rep = _replica(vae, _shared(vae.flat_params.size, vae.dtype))
        self.grads = rep.flat_grads
        self.conn, child = _pipe_pair()
        self.proc = ctx.Process(target=_serve, args=(child, self.conn, rep, self.x, self.eps, self.out, shared),
                                name="numpyvae-step", daemon=True)
        release_free_heap()    # freed pages shared at the fork would turn into the child's own copies
        _freeze()
        try:
            with warnings.catch_warnings():   # Python >= 3.12 warns on fork from a threaded process
                warnings.simplefilter("ignore", DeprecationWarning)
                self.proc.start()
        except BaseException:
            _unfreeze()
            raise
        self.frozen = True
        child.close()
        self.busy = False

    def send(self, *msg: Any) -> None:
        try:
            self.conn.send(msg)
        except OSError:
            raise self._gone() from None
        self.busy = True

    def result(self) -> Any:
        try:
            _spin(self.conn)
            while not self.conn.wait(PATIENCE):     # no answer yet: is the child still working?
                self._check_alive()
            out = self.conn.recv()
        except (EOFError, OSError):
            raise self._gone() from None
        self.busy = False
        if isinstance(out, str):
            raise RuntimeError(f"the training worker process failed:\n{out}")
        return out

    def _check_alive(self) -> None:
        if not self.proc.is_alive():
            raise self._gone()
        if _stopped(self.proc.pid):
            self.proc.kill()          # a stopped child never answers: end it, and say so
            self.proc.join(5)
            raise WorkerLost(f"the training worker process (pid {self.proc.pid}) was stopped (SIGSTOP) "
                             "during a step")

    def _gone(self) -> WorkerLost:
        self.proc.join(1)
        return WorkerLost(f"the training worker process (pid {self.proc.pid}) ended during a step "
                          f"(exit code {self.proc.exitcode})")

    def close(self) -> None:
        try:
            if self.proc.is_alive():
                if self.busy:       # interrupted mid-step: its answer is not wanted
                    self.proc.terminate()
                else:
                    try:
                        self.conn.send(None)
                    except OSError:
                        self.proc.terminate()
                self.proc.join(5)
                if self.proc.is_alive():
                    self.proc.kill()
                    self.proc.join()
            self.conn.close()
        finally:                    # even when a second Ctrl-C lands in the join above
            if self.frozen:
                self.frozen = False
                _unfreeze()


#: how many live children keep the parent's objects frozen (``_freeze``), and whether the
#: freeze is ours: objects someone else froze before are theirs to thaw
_frozen = 0
_ours = False


def _freeze() -> None:
    """Before a fork: move every object the garbage collector tracks out of its reach
    (``gc.freeze``) while a child lives. A collection writes into the header of each object it
    visits, and a written page shared with the child becomes a private copy in both processes;
    with the objects of the fork's moment frozen, collections in either process visit only
    newer ones (``docs/benchmarks.md``: with Adam's flush done a block at a time, the child's
    own memory on the 784-400-20 model fell from 10 MB to 8)."""
    global _frozen, _ours
    if _frozen == 0:
        _ours = gc.get_freeze_count() == 0
        if _ours:
            gc.freeze()
    _frozen += 1


def _unfreeze() -> None:
    """The last child is gone: the objects frozen for it are the collector's again."""
    global _frozen
    _frozen -= 1
    if _frozen == 0 and _ours:
        gc.unfreeze()


#: seconds a process polls its pipe before it sleeps in ``recv``: waking a sleeping process
#: costs tens of microseconds, and the other side usually answers within this
SPIN = 0.0005


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (Linux: state T in /proc; elsewhere never known)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _spin(conn: Any) -> None:
    """Poll ``conn`` for up to ``SPIN`` seconds (an answer usually comes that soon)."""
    if not conn.poll():
        end = time.perf_counter() + SPIN
        while not conn.poll() and time.perf_counter() < end:
            pass


def _recv(conn: Any) -> Any:
    _spin(conn)
    return conn.recv()


def _merge(g: np.ndarray, other: np.ndarray, weights: list[float]) -> float:
    """g <- w0 g + w1 other, in place (``other`` may be overwritten: it is rewritten next step).
    Returns g . g, the trainer's finiteness check of this slice, taken while g is in cache."""
    if weights[0] == weights[1]:        # parts of equal size: two passes instead of three
        g += other
        g *= weights[0]
    else:
        g *= weights[0]
        other *= weights[1]
        g += other
    return float(np.dot(g, g))


def _serve(conn: _Pipe, parents: _Pipe, rep: Any, x: np.ndarray, eps: np.ndarray, out: np.ndarray,
           shared: dict) -> None:
    """The child's loop. "step": forward and backward of its replica on the rows the parent
    wrote; "merge": its slice of the weighted gradient sum; "adam": its slice of the update."""
    parents.close()       # the parent's ends: with them open here, the parent's death would go unseen
    for sig in ("SIGINT", "SIGTERM", "SIGHUP"):       # stopping the run is the parent's to handle
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), signal.SIG_IGN)
    keep_freed_heap()
    adams = {False: BlockedAdam(), True: fused.FusedAdam()}    # the parent's kind of Adam, by a flag
    mine = rep.flat_grads
    while True:
        try:
            msg = _recv(conn)
        except (EOFError, OSError):    # the parent is gone
            return
        if msg is None:
            return
        try:
            if msg[0] == "step":
                _, rows, k, beta, kl, err = msg
                with np.errstate(**err):
                    t = rep.forward(x[:rows], eps=eps[:k, :rows], k=k, beta=beta, kl=kl)
                    rep.backward()
                _send_terms(conn, t, out)
            elif msg[0] == "merge":
                _, lo, hi, weights = msg
                conn.send(_merge(shared["grads"][lo:hi], mine[lo:hi], weights))
            elif msg[0] == "adam" and len(msg) == 9:
                adam = adams[msg[3]]
                _, lo, hi, _, adam.lr, adam.b1, adam.b2, adam.eps, adam.t = msg
                adam.update_blocked(*(shared[a][lo:hi] for a in ("params", "grads", "m", "v")))
                adam._flush_moments(shared["m"][lo:hi], shared["v"][lo:hi])
                conn.send(True)
            else:
                raise ValueError(f"unknown request {msg!r}")
        except Exception:
            conn.send(traceback.format_exc())


class ProcessSplitStep(SplitStep):
    """``SplitStep`` with the other part in a child process instead of a thread.

    Threads share one interpreter lock, so the Python between NumPy calls of two parts runs one
    at a time; processes do not. The parent keeps part 0 of each minibatch; the child owns a
    replica built before the fork, whose W and b are views of a parameter buffer in shared
    memory. The model's ``flat_params`` and ``flat_grads`` are moved there for good (an
    optimizer bound to the old array must follow), so the optimizer's in-place update reaches
    the replica. Per step the parent writes the child's rows of x and eps into shared arrays and
    sends a few scalars down a pipe; the child sends back its ``Terms``. Then each process sums
    the weighted gradients over its half of the buffer, and ``update`` runs Adam's update the
    same way, each process on its half (Adam's state moves to shared memory too): the update is
    elementwise, so the halves give the same numbers as one pass. ``update`` returns without
    waiting for the child's half, so that it overlaps the caller's work until the next step;
    whoever reads the parameters before that step calls ``wait`` first. The result equals
    ``SplitStep``'s. ``batch_size`` and ``k`` size the shared buffers (larger steps are refused).
    Two processes only, and only with the "fork" start method (Linux): ``make_split`` falls back
    to threads elsewhere and for more than two.
    """

    def __init__(self, vae: Any, batch_size: int, k: int = 1):
        _check(vae, 2)
        if not (isinstance(batch_size, int) and batch_size >= 1 and isinstance(k, int) and k >= 1):
            raise ValueError(f"batch_size and k: expected positive integers, got {batch_size!r}, {k!r}")
        self.vae, self.threads, self.batch_size, self.k = vae, 2, batch_size, k
        self.pool = None            # nothing for an optimizer's thread pool: ``update`` splits Adam
        n = vae.flat_params.size
        if not (_is_shared(vae.flat_params) and _is_shared(vae.flat_grads)):
            vae._bind_flat_buffers(_shared(n, vae.dtype), _shared(n, vae.dtype))
        self.shared = {"params": vae.flat_params, "grads": vae.flat_grads,
                       "m": _shared(n, vae.dtype), "v": _shared(n, vae.dtype)}
        self.mid = n // 2
        self._updating = False
        self.worker: _Worker | None = _Worker(multiprocessing.get_context("fork"), vae,
                                              split_sizes(batch_size, k, 2)[0], k, self.shared)

    def close(self) -> None:
        if self.worker is not None:
            try:
                self.wait()
            finally:
                self.worker.close()
                self.worker = None

    def wait(self) -> None:
        """Until the child has finished its half of the last ``update``: call it before reading
        the parameters (``step`` and ``close`` do)."""
        if self._updating:
            self._updating = False
            self.worker.result()

    def step(self, xb: np.ndarray, *, k: int = 1, beta: float = 1.0, kl: str = "closed",
             idle: Any = None) -> Terms:
        """``SplitStep.step``; ``idle``, if given, is called (once) when the parent's part is done
        and the child's is not yet: the trainer makes its next minibatch there."""
        vae, w = self.vae, self.worker
        if w is None:
            raise RuntimeError("this split step is closed")
        B = xb.shape[0]
        if B > self.batch_size or k > self.k:
            raise ValueError(f"xb, k: this split step holds at most {self.batch_size} examples and k = {self.k}, "
                             f"got {B} and k = {k}")
        sizes = split_sizes(B, k, 2)
        self.grad_sq = None
        if len(sizes) == 1:
            self.wait()
            t = vae.forward(xb, eps=None, k=k, beta=beta, kl=kl)
            vae.backward()
            return t
        eps = sample_eps(vae.rng, k, B, vae.z_dim, vae.dtype)    # the draw forward would make
        a, n = sizes[0], sizes[1]
        w.x[:n] = xb[a:]        # the child's update does not read these: no need to wait for it yet
        w.eps[:k, :n] = eps[:, a:]
        self.wait()
        w.send("step", n, k, beta, kl, np.geterr())
        terms = [vae.forward(xb[:a], eps=eps[:, :a], k=k, beta=beta, kl=kl)]
        vae.backward()
        wts = [a / B, n / B]
        w.send("merge", self.mid, vae.flat_grads.size, wts)    # taken up as soon as the child's part is done
        if idle is not None and not w.conn.poll():
            idle()
        try:
            terms.append(_read_terms(w.result(), w.out))
        except WorkerLost:
            raise
        except RuntimeError:
            if w.proc.is_alive():   # its part failed: take the merge's answer too, so the next step starts clean
                with contextlib.suppress(RuntimeError):
                    w.result()
            raise
        sq = _merge(vae.flat_grads[:self.mid], w.grads[:self.mid], wts)
        self.grad_sq = sq + w.result()
        return _join(terms, wts)

    def update(self, opt: Any) -> bool:
        """``opt.step(vae.flat_params, vae.flat_grads)``, split across the two processes when
        ``opt`` is Adam on its blocked path; returns False (and does nothing) otherwise."""
        vae, sh, w = self.vae, self.shared, self.worker
        if w is None or not _adam_splits(opt, vae.flat_params):
            return False
        self.wait()
        opt._grad(vae.flat_params, vae.flat_grads)      # the optimizer's own checks and binding
        for name in ("m", "v"):                   # Adam's state into shared memory
            if getattr(opt, name) is not sh[name]:      # (again, if it was replaced)
                old = getattr(opt, name)
                sh[name][...] = 0 if old is None else old
                setattr(opt, name, sh[name])
        opt.t += 1
        n = vae.flat_params.size
        w.send("adam", self.mid, n, isinstance(opt, fused.FusedAdam), opt.lr, opt.b1, opt.b2, opt.eps, opt.t)
        opt.update_blocked(*(sh[a][:self.mid] for a in ("params", "grads", "m", "v")))
        opt._flush_moments(sh["m"][:self.mid], sh["v"][:self.mid])
        self._updating = True     # the child's answer is collected by the next step (or wait)
        return True


class Governor:
    """Whether the next training step splits, when a split can be slower than a whole step.

    With another process busy on one of two cores, the split's two halves keep waiting for each
    other, and a split step measured ~1.8x slower than a whole one (``bench_vs_torch.py --busy``).
    So steps are timed in windows of ``WINDOW`` steps. Windows 0 and 1 split (the first with the
    child's warm-up), window 2 runs whole steps (a probe), and from then on the way with the
    lower time per example in its latest window runs, but for a probe of the other way after
    ``PROBE`` windows; each probe that confirms the choice doubles that gap (up to ``MAX_GAP``),
    so a machine that stays busy, or stays quiet, pays less and less for asking. While whole
    steps run, a probe of the split waits as long as the load average leaves less than half a
    CPU idle (``load``: a callable, ``os.getloadavg()[0]`` by default; ``cpus`` the CPU count):
    a split would only wait for the busy core again. Both ways give
    the same step up to the order of additions; which way a step ran depends on the machine's
    load, so a run that adapts is reproducible only to rounding.
    """
    WINDOW = 10
    PROBE = 25
    MAX_GAP = 400

    def __init__(self, load: Any = None, cpus: int | None = None) -> None:
        self.load = load if load is not None else _load_average
        self.cpus = cpus if cpus is not None else (os.cpu_count() or 1)
        self.deferred = 0                        # probes of the split put off: the machine was busy
        self.steps = 0
        self.best = True
        self.cost: dict[bool, float | None] = {True: None, False: None}
        self.counts = {True: 0, False: 0}        # steps run each way
        self.probe_at, self.gap = 2, self.PROBE
        self._seconds = 0.0
        self._examples = 0

    def split_next(self) -> bool:
        window, start = divmod(self.steps, self.WINDOW)
        if start == 0 and window == self.probe_at and not self.best and self.cpus - self.load() < 0.5:
            self.probe_at += self.gap
            self.deferred += 1
        return (not self.best) if window == self.probe_at else self.best

    def record(self, split: bool, examples: int, seconds: float) -> None:
        self._seconds += seconds
        self._examples += examples
        self.steps += 1
        self.counts[split] += 1
        if self.steps % self.WINDOW:
            return
        window = self.steps // self.WINDOW - 1
        self.cost[split] = self._seconds / max(1, self._examples)
        self._seconds, self._examples = 0.0, 0
        if window == self.probe_at:
            a, b = self.cost[True], self.cost[False]
            best = a <= b if a is not None and b is not None else self.best
            self.gap = min(2 * self.gap, self.MAX_GAP) if best == self.best else self.PROBE
            self.best = best
            self.probe_at = window + self.gap


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):     # no load average (Windows): never put a probe off
        return 0.0


def fork_available() -> bool:
    """Whether this system can fork a child process (Linux and macOS can; Windows cannot)."""
    return "fork" in multiprocessing.get_all_start_methods()


def uses_processes(threads: int) -> bool:
    """Whether ``make_split`` gives ``threads`` parts a child process (else threads)."""
    how = os.environ.get("NUMPYVAE_SPLIT", "processes")
    if how not in ("processes", "threads"):
        raise ValueError(f"NUMPYVAE_SPLIT: expected 'processes' or 'threads', got {how!r}")
    return (how == "processes" and threads == 2 and sys.platform.startswith("linux")
            and fork_available())


def make_split(vae: Any, threads: int, batch_size: int, k: int = 1) -> SplitStep:
    """The split step for ``threads`` >= 2: a child process for two where "fork" is available
    (Linux), else threads. ``NUMPYVAE_SPLIT=threads`` in the environment asks for threads."""
    if uses_processes(threads):
        return ProcessSplitStep(vae, batch_size, k)
    return SplitStep(vae, threads)
