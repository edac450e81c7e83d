"""Finite-difference gradient checks: the tool that grades every backward.

Relative error, one formula everywhere::

    rel_error(a, n) = max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|, 1e-12)

The numerator is the worst absolute disagreement; the denominator is the size
of the larger gradient, so the ratio stays meaningful when single entries are
close to zero (where an element-wise ratio would blow up), and the floor keeps
it finite when both gradients vanish. Thresholds (float64, central differences
with h = 1e-5): ``PASS = 1e-6``. A gradient off by a factor of 2 scores 0.5; a
dropped term or a transposed weight gradient scores far above 1e-3.

One limit to know: rounding in the central difference is about 1e-16 * |loss| / h,
so a parameter whose *whole* gradient is tiny compared with the loss (a dead ReLU
layer, a saturated tanh, beta close to 0) can score above 1e-6 while being right.
Look at the analytic and numeric values side by side before blaming the backward;
a larger h (1e-4) shrinks the rounding part and leaves a correct gradient passing.

Cost: every coordinate checked costs two evaluations of f. For a large model check a
fixed number of random coordinates per parameter (``per_param=N``, seeded), as cs231n's
sparse gradient check does; a wrong factor or a dropped term shows in any coordinate it
touches, so a few per parameter catch it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from . import _validate
from ._progress import progress_bar

__all__ = ["numerical_grad", "rel_error", "directional_check", "check_function",
           "check_layer", "check_model", "GradcheckReport", "PASS", "H"]

PASS = 1e-6
H = 1e-5
#: above this many coordinates ``check_model`` shows a progress bar (when ``progress=None``)
PROGRESS_ABOVE = 2000


def rel_error(a, n) -> float:
    """max|a - n| / max(max|a|, max|n|, 1e-12) for two gradients of the same shape.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    """
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"gradients must have the same shape, got {a.shape} and {n.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(n)), 1e-12)
    return float(np.max(np.abs(a - n)) / scale)


def _require_float64(name, x):
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError(f"{name} must be a float64 numpy array (finite differences need "
                        f"float64), got {type(x).__name__} {getattr(x, 'dtype', '')}")


def numerical_grad(f, x, h=H, index=None):
    """Central differences (f(x + h e_i) - f(x - h e_i)) / 2h of a scalar f w.r.t. array x.

    ``x`` is perturbed in place and restored. ``index``: optional flat indices to
    evaluate (the others are returned as NaN), for sparse checks of large arrays.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    """
    _require_float64("x", x)
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous so it can be perturbed in place")
    grad = np.full(x.shape, np.nan) if index is not None else np.zeros(x.shape)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    for i in (range(x.size) if index is None else index):
        old = flat_x[i]
        flat_x[i] = old + h
        fp = float(f())
        flat_x[i] = old - h
        fm = float(f())
        flat_x[i] = old
        flat_g[i] = (fp - fm) / (2 * h)
    return grad


def directional_check(f, x, grad, rng=None, h=H) -> float:
    """Relative error of the derivative of f along one random unit direction v.

    Compares (f(x + h v) - f(x - h v)) / 2h with <grad, v>: two evaluations of f
    test every coordinate of ``grad`` at once (not each one separately). The error is
    relative to the larger of the two and a hundredth of |grad| / sqrt(size), the typical
    size of <grad, v>: a direction that happens to be almost orthogonal to grad would
    otherwise measure the round-off of the difference against a near-zero number.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.13)
    """
    _require_float64("x", x)
    rng = np.random.default_rng(0) if rng is None else rng
    v = rng.standard_normal(x.shape)
    v /= np.linalg.norm(v)
    old = x.copy()
    x += h * v
    fp = float(f())
    x[...] = old - h * v
    fm = float(f())
    x[...] = old
    numeric = (fp - fm) / (2 * h)
    grad = np.asarray(grad, dtype=np.float64)
    analytic = float(np.sum(grad * v))
    typical = float(np.linalg.norm(grad)) / np.sqrt(v.size)
    return abs(numeric - analytic) / max(abs(numeric), abs(analytic), 0.01 * typical, 1e-12)


@dataclass
class GradcheckReport:
    """Rows of (name, shape, entries checked, max relative error, passed).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    """
    rows: list = field(default_factory=list)
    threshold: float = PASS

    def add(self, name, analytic, numeric, index=None):
        a = np.asarray(analytic, dtype=np.float64)
        n = np.asarray(numeric, dtype=np.float64)
        if index is not None:
            a, n = a.reshape(-1)[index], n.reshape(-1)[index]
        err = rel_error(a, n)
        self.rows.append((name, tuple(np.shape(analytic)), int(np.size(a)), err,
                          err < self.threshold))

    @property
    def passed(self) -> bool:
        return all(r[4] for r in self.rows)

    @property
    def max_error(self) -> float:
        return max((r[3] for r in self.rows), default=0.0)

    def errors(self) -> dict:
        return {r[0]: r[3] for r in self.rows}

    def __str__(self):
        w = max([len(r[0]) for r in self.rows] + [9])
        lines = [f"{'parameter':<{w}}  {'shape':<14} {'checked':>7}  {'max rel err':>11}  result",
                 "-" * (w + 45)]
        for name, shape, n, err, ok in self.rows:
            lines.append(f"{name:<{w}}  {str(shape):<14} {n:>7}  {err:>11.2e}  "
                         f"{'pass' if ok else 'FAIL'}")
        lines.append(f"{'all passed' if self.passed else 'SOME FAILED'} "
                     f"(threshold {self.threshold:.0e}, max error {self.max_error:.2e})")
        return "\n".join(lines)

    __repr__ = __str__


def _per_param(per_param) -> int | None:
    """The number of coordinates to check per parameter (None: all)."""
    return None if per_param is None else _validate.positive_int("per_param", per_param)


def _pick(size, per_param, rng):
    """Sorted random flat indices (per_param of them), or None for every coordinate."""
    if per_param is None or per_param >= size:
        return None
    return np.sort(rng.choice(size, size=per_param, replace=False))


def check_function(f, grad, x, name="x", h=H, per_param=None, seed=0) -> GradcheckReport:
    """Check ``grad`` (the analytic gradient array of scalar ``f()`` w.r.t. ``x``).

    ``f`` takes no arguments and reads ``x``, which is perturbed in place.
    ``per_param``: check only this many random entries of x (drawn with ``seed``).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    """
    report = GradcheckReport()
    index = _pick(x.size, _per_param(per_param), np.random.default_rng(seed))
    report.add(name, grad, numerical_grad(f, x, h, index), index)
    return report


def check_layer(layer, x, seed=0, h=H) -> GradcheckReport:
    """Check a layer's backward: dx and every parameter gradient, in float64.

    Uses the scalar f = sum(forward(x) * g) with a fixed random g, whose
    gradient w.r.t. the output is g, so ``backward(g)`` must give df/dx.
    x: (B, D_in), float64. Works for any object with forward/backward (and
    optional ``params()``/``grads()`` dicts).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    """
    x = np.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(np.shape(layer.forward(x)))

    def f():
        return float(np.sum(layer.forward(x) * g))

    layer.forward(x)
    dx = layer.backward(g)
    analytic = {"x": None if dx is None else np.array(dx)}
    params = layer.params() if hasattr(layer, "params") else {}
    grads = layer.grads() if hasattr(layer, "grads") else {}
    for k in params:
        _require_float64(f"the layer's parameter {k!r}", params[k])
        analytic[k] = np.array(grads[k])
    report = GradcheckReport()
    if analytic["x"] is not None:
        report.add("x", analytic["x"], numerical_grad(f, x, h))
    for k, p in params.items():
        report.add(k, analytic[k], numerical_grad(f, p, h))
    return report


def check_model(vae, x, eps=None, k=None, beta=1.0, kl="closed", per_param=None, seed=0,
                h=H, progress=None, **forward_kwargs) -> GradcheckReport:
    """Check every parameter gradient of the VAE's loss with eps held fixed.

    The model is copied to float64 first (the original is untouched). ``eps``:
    (K, B, Z); if None it is drawn once from ``seed`` with K = k or 1.
    ``forward_kwargs`` go to ``forward`` as they are (``objective="iwae"``, ``y=labels``,
    a VQ-VAE's ``part=...``). A model without sampling noise (``stochastic = False``,
    the VQ-VAE) gets no eps, beta or kl; a model with ``checkable_params(**forward_kwargs)``
    is checked on those parameters only (where its gradient is a true derivative).
    Also reports a directional check over all parameters at once (when all are checked).

    Cost: each coordinate checked costs two forward passes of the float64 copy on x.
    Measured on this project's 2-core machine (one BLAS thread, other jobs running):
    about 0.2 ms per coordinate for a 12-8-3 model on 5 examples (all 406 coordinates
    in 0.1 s) and about 2 ms for a 784-400-20 model on 4 examples, so checking all
    652,824 parameters of the latter would take about 20 minutes. Hence:

    ``per_param=N`` (sampled mode): check N random coordinates of every parameter
    (all of a parameter with at most N entries), drawn with ``seed``, so the same
    call checks the same coordinates. ``per_param=10`` checks the 784-400-20 model
    (100 coordinates) in about half a second, and a wrong factor or a dropped term
    shows in any coordinate it touches.
    ``per_param=None`` (default) checks every coordinate.

    ``progress``: None shows a progress bar (tqdm, on stderr; redrawn at most every
    30 s when stderr is not a terminal) when more than ``PROGRESS_ABOVE`` coordinates
    are to be checked; True or False forces it.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    Derivation: derivations/07_objective_backward.md, eq. (7.1)
    Derivation: derivations/10_model_family.md, eq. (10.16)
    """
    per_param = _per_param(per_param)
    model = vae.copy(np.float64)
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    kwargs = dict(forward_kwargs)
    if getattr(model, "stochastic", True):
        if eps is None:
            eps = rng.standard_normal((k or 1, x.shape[0], model.z_dim))
        kwargs.update(eps=np.asarray(eps, dtype=np.float64), beta=beta, kl=kl)

    def f():
        return model.forward(x, **kwargs).loss

    model.forward(x, **kwargs)
    model.backward()
    analytic = model.flat_grads.copy()
    grads = {name: g.copy() for name, g in model.grads.items()}
    names = (list(model.checkable_params(**forward_kwargs))
             if hasattr(model, "checkable_params") else list(model.params))
    picks = {name: _pick(model.params[name].size, per_param, rng) for name in names}
    total = sum(model.params[n].size if picks[n] is None else len(picks[n]) for n in names)
    show = total > PROGRESS_ABOVE if progress is None else bool(progress)
    report = GradcheckReport()
    # in a log file (stderr not a terminal) one line every 30 s, not ten a second
    every = 0.1 if getattr(sys.stderr, "isatty", lambda: False)() else 30.0
    with progress_bar(total=total, unit="coord", desc="check_model", disable=not show,
              leave=False, mininterval=every) as bar:
        calls = [0]

        def f_counted():       # two calls of f per coordinate
            calls[0] += 1
            if calls[0] % 2 == 0:
                bar.update(1)
            return f()

        for name in names:
            index = picks[name]
            report.add(name, grads[name], numerical_grad(f_counted, model.params[name], h, index),
                       index)
    if len(names) == len(model.params):
        err = directional_check(f, model.flat_params, analytic, rng, h)
        report.rows.append(("(all, random direction)", (model.flat_params.size,), 1, err,
                            err < report.threshold))
    return report
