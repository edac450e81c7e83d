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
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["numerical_grad", "rel_error", "directional_check", "check_function",
           "check_layer", "check_model", "GradcheckReport", "PASS", "H"]

PASS = 1e-6
H = 1e-5


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


def numerical_grad(f, x, h=H, index=None):
    """Central differences (f(x + h e_i) - f(x - h e_i)) / 2h of a scalar f w.r.t. array x.

    ``x`` is perturbed in place and restored. ``index``: optional flat indices to
    evaluate (the others are returned as NaN), for sparse checks of large arrays.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError("x must be a float64 numpy array (finite differences need float64), "
                        f"got {type(x).__name__} {getattr(x, 'dtype', '')}")
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
    test every coordinate of ``grad`` at once (not each one separately).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.13)
    """
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
    analytic = float(np.sum(np.asarray(grad, dtype=np.float64) * v))
    return abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12)


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


def _pick(size, sparse, rng):
    if sparse is None or sparse >= size:
        return None
    return np.sort(rng.choice(size, size=sparse, replace=False))


def check_function(f, grad, x, name="x", h=H, sparse=None, seed=0) -> GradcheckReport:
    """Check ``grad`` (the analytic gradient array of scalar ``f()`` w.r.t. ``x``).

    ``f`` takes no arguments and reads ``x``, which is perturbed in place.

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    """
    report = GradcheckReport()
    index = _pick(x.size, sparse, np.random.default_rng(seed))
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
        analytic[k] = np.array(grads[k])
    report = GradcheckReport()
    if analytic["x"] is not None:
        report.add("x", analytic["x"], numerical_grad(f, x, h))
    for k, p in params.items():
        report.add(k, analytic[k], numerical_grad(f, p, h))
    return report


def check_model(vae, x, eps=None, k=None, beta=1.0, kl="closed", sparse=None, seed=0,
                h=H, **forward_kwargs) -> GradcheckReport:
    """Check every parameter gradient of the VAE's loss with eps held fixed.

    The model is copied to float64 first (the original is untouched). ``eps``:
    (K, B, Z); if None it is drawn once from ``seed`` with K = k or 1.
    ``sparse``: check at most this many random entries per parameter.
    ``forward_kwargs`` go to ``forward`` as they are (``objective="iwae"``, ``y=labels``,
    a VQ-VAE's ``part=...``). A model without sampling noise (``stochastic = False``,
    the VQ-VAE) gets no eps, beta or kl; a model with ``checkable_params(**forward_kwargs)``
    is checked on those parameters only (where its gradient is a true derivative).
    Also reports a directional check over all parameters at once (when all are checked).

    Derivation: derivations/06_backprop_mlp.md, eq. (6.12)
    Derivation: derivations/02_elbo.md, eq. (2.9)
    Derivation: derivations/11_model_family.md, eq. (11.16)
    """
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
    report = GradcheckReport()
    for name in names:
        p = model.params[name]
        index = _pick(p.size, sparse, rng)
        report.add(name, grads[name], numerical_grad(f, p, h, index), index)
    if len(names) == len(model.params):
        err = directional_check(f, model.flat_params, analytic, rng, h)
        report.rows.append(("(all, random direction)", (model.flat_params.size,), 1, err,
                            err < report.threshold))
    return report
