"""Figures for a trained VAE: loss curves, reconstructions, samples, latent space, manifold.

Every function draws on a fresh ``matplotlib.figure.Figure`` rendered by the Agg canvas (no
``pyplot``, no global backend change, nothing is shown), writes a PNG atomically and returns
its path. The drawing functions take plain arrays, so they can be exercised without a model;
``make_figures`` is the glue that computes those arrays from a ``numpyvae.VAE``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .checkpoint import atomic_write

__all__ = [
    "save_figure",
    "image_grid",
    "norm_ppf",
    "manifold_z",
    "pca_2d",
    "curve_limits",
    "plot_loss_curves",
    "plot_reconstructions",
    "plot_samples",
    "plot_latent",
    "plot_manifold",
    "plot_toy",
    "plot_class_rows",
    "plot_codebook_usage",
    "plot_preset_curve",
    "make_figures",
]


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: independent of any pyplot backend
    return fig


def save_figure(fig: Any, path: str | os.PathLike) -> str:
    """Render ``fig`` to PNG at ``path`` atomically (temp file + fsync + rename); return the path."""
    path = os.fspath(path)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    return path


# ----------------------------------------------------------------------------------------------
# array helpers
# ----------------------------------------------------------------------------------------------
def image_grid(images: np.ndarray, image_shape: Sequence[int], ncol: int, pad: int = 1,
               pad_value: float = 1.0) -> np.ndarray:
    """Tile flattened images (N, H*W) into one 2-D array, ``ncol`` images per row.

    Values are clipped to [0, 1]; cells are separated by ``pad`` pixels of ``pad_value``;
    missing cells at the end are left as padding. Returns (rows*(H+pad)-pad, ncol*(W+pad)-pad).
    """
    images = np.asarray(images, dtype=np.float64)
    h, w = (int(s) for s in image_shape)
    if images.ndim != 2 or images.shape[1] != h * w:
        raise ValueError(f"images: expected shape (N, {h * w}) for image_shape {tuple(image_shape)}, "
                         f"got {images.shape}")
    if ncol < 1:
        raise ValueError(f"ncol: expected a positive integer, got {ncol!r}")
    n = images.shape[0]
    nrow = max(1, -(-n // ncol))
    out = np.full((nrow * (h + pad) - pad, ncol * (w + pad) - pad), pad_value, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = images[i].reshape(h, w)
    return np.clip(out, 0.0, 1.0)


def norm_ppf(p: float | np.ndarray) -> np.ndarray:
    """Quantile function (inverse CDF) of N(0, 1) for probabilities in (0, 1).

    Solves Phi(z) = p by Newton's method, Phi(z) = (1 + erf(z / sqrt 2)) / 2. Started from
    z = 0 the iteration approaches the root monotonically (Phi is concave for z > 0 and convex
    for z < 0), so it needs no safeguarding; 60 iterations reach machine precision for
    p in [1e-10, 1 - 1e-10].
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any(~np.isfinite(p)) or np.any(p <= 0) or np.any(p >= 1):
        raise ValueError("p: expected probabilities strictly between 0 and 1")
    erf = np.vectorize(math.erf, otypes=[np.float64])
    z = np.zeros_like(p)
    for _ in range(60):
        cdf = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        step = (cdf - p) / pdf
        z = z - step
        if np.all(np.abs(step) < 1e-13):
            break
    return z


def manifold_z(n: int = 20, p_lo: float = 0.05, p_hi: float = 0.95) -> np.ndarray:
    """Grid of 2-D latent points on N(0, 1) quantiles, shape (n*n, 2).

    Row r, column c of the figure is point ``r*n + c``: z1 = q[c] increases left to right,
    z2 = q[n-1-r] increases bottom to top, with q = norm_ppf(linspace(p_lo, p_hi, n)).
    """
    if n < 2:
        raise ValueError(f"n: expected an integer >= 2, got {n!r}")
    q = norm_ppf(np.linspace(p_lo, p_hi, n))
    z1, z2 = np.meshgrid(q, q[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of x (N, Z) on their two leading principal axes.

    Returns ``(proj (N, 2), explained (2,))`` where ``explained`` is the fraction of the total
    variance carried by each axis. Uses the SVD of the centred data; signs are fixed so that
    each axis has a positive largest-magnitude loading (deterministic figures).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"x: expected shape (N, Z) with Z >= 2, got {x.shape}")
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    vt = vt[:2]
    signs = np.sign(vt[np.arange(2), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    total = float(np.sum(s ** 2))
    explained = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
    return xc @ vt.T, explained


# ----------------------------------------------------------------------------------------------
# figures from arrays
# ----------------------------------------------------------------------------------------------
def curve_limits(*curves: Sequence[float], skip: int = 1, pad: float = 0.08) -> tuple[float, float] | None:
    """y-limits for one panel of training curves that show their progress, or None to let
    matplotlib choose.

    The first epoch of a VAE is often far above the rest (Frey Face: about 3500 nats, then
    near -500), and on a linear axis it flattens everything after it. When a curve's first
    ``skip`` values lie more than twice the range of all later values away from that range
    (so the later epochs would fill less than a third of the axis), return the later values'
    range (widened to any first values that are not that far), padded by ``pad`` of it on each
    side; the caller notes the values left out. Each curve needs 3 finite values after ``skip``.
    """
    arrs = [np.asarray(c, dtype=float) for c in curves]
    if not arrs or any(np.isfinite(a[skip:]).sum() < 3 for a in arrs):
        return None
    rest = np.concatenate([a[skip:] for a in arrs])
    rest = rest[np.isfinite(rest)]
    heads = np.concatenate([a[:skip] for a in arrs])
    heads = heads[np.isfinite(heads)]
    lo, hi = float(rest.min()), float(rest.max())
    span = max(hi - lo, 1e-9 * max(1.0, abs(hi)))
    far = (heads < lo - 2 * span) | (heads > hi + 2 * span)
    if not far.any():
        return None
    if (~far).any():
        lo, hi = min(lo, float(heads[~far].min())), max(hi, float(heads[~far].max()))
        span = max(hi - lo, span)
    return lo - pad * span, hi + pad * span


def plot_loss_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike, title: str | None = None) -> str:
    """Three panels (negative ELBO, reconstruction cost, KL) of train and validation curves.

    ``history`` has per-epoch lists ``epoch``, ``train_neg_elbo``, ``train_recon``,
    ``train_kl``, ``val_neg_elbo``, ``val_recon``, ``val_kl`` and optionally ``train_loss`` and
    ``beta`` (the training objective is drawn dashed in the first panel when some beta != 1).
    Returns the PNG path.
    """
    epochs = np.asarray(history.get("epoch", []), dtype=float)
    if epochs.size == 0:
        raise ValueError("history: expected at least one epoch of values")
    fig = _figure((12, 3.8))
    axes = fig.subplots(1, 3)
    marker = "o" if epochs.size <= 20 else None
    panels = [("neg_elbo", "negative ELBO (nats)"),
              ("recon", "reconstruction -E log p(x|z) (nats)"),
              ("kl", "KL(q(z|x) || p(z)) (nats)")]
    for ax, (key, label) in zip(axes, panels):
        for split, style in (("train", "-"), ("val", "-")):
            vals = history.get(f"{split}_{key}")
            if vals is None:
                continue
            v = np.asarray(vals, dtype=float)
            if v.size and np.any(np.isfinite(v)):
                ax.plot(epochs[: v.size], v, style, marker=marker, ms=3,
                        label=split if split == "train" else "validation")
        shown = {name: np.asarray(history[f"{sp}_{key}"], dtype=float)
                 for sp, name in (("train", "train"), ("val", "validation")) if f"{sp}_{key}" in history}
        if key == "neg_elbo" and "train_loss" in history:
            betas = np.asarray(history.get("beta", []), dtype=float)
            if betas.size and np.any(betas != 1.0) or "train_neg_elbo" not in history:
                what = "beta-weighted" if betas.size and np.any(betas != 1.0) else "the loss minimised"
                ax.plot(epochs, np.asarray(history["train_loss"], dtype=float), "--", color="grey",
                        label=f"train objective ({what})")
                shown["objective"] = np.asarray(history["train_loss"], dtype=float)
        limits = curve_limits(*[v for v in shown.values() if v.size])
        if limits is not None:
            lo, hi = limits
            ax.set_ylim(lo, hi)
            first = ", ".join(f"{name} {v[0]:.4g}" for name, v in shown.items() if v.size and not lo <= v[0] <= hi)
            ax.text(0.98, 0.97, f"epoch 1 off scale: {first}", transform=ax.transAxes, ha="right", va="top",
                    fontsize=8, color="dimgrey")
        ax.set_xlabel("epoch")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reconstructions(x: np.ndarray, x_rec: np.ndarray, image_shape: Sequence[int], path: str | os.PathLike,
                         n: int = 32, pairs_per_row: int = 8, title: str | None = None) -> str:
    """Grid of inputs beside their reconstructions: each cell pair is (input | reconstruction).

    x, x_rec: (N, H*W) in [0, 1]; the first ``min(n, N)`` rows are drawn. Returns the PNG path.
    """
    x = np.asarray(x)
    x_rec = np.asarray(x_rec)
    if x.shape != x_rec.shape:
        raise ValueError(f"x_rec: expected the shape of x {x.shape}, got {x_rec.shape}")
    m = min(n, x.shape[0])
    inter = np.empty((2 * m, x.shape[1]), dtype=np.float64)
    inter[0::2] = x[:m]
    inter[1::2] = x_rec[:m]
    grid = image_grid(inter, image_shape, ncol=2 * pairs_per_row)
    h, w = (int(s) for s in image_shape)
    aspect = grid.shape[0] / grid.shape[1]
    fig = _figure((10, max(2.0, 10 * aspect + 0.6)))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    # faint separators between pairs so the eye groups (input, reconstruction)
    for j in range(1, pairs_per_row):
        ax.axvline(j * 2 * (w + 1) - 1, color="tab:red", lw=1.2)
    ax.set_axis_off()
    ax.set_title(title or "inputs (left of each pair) and their reconstructions (right)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_samples(samples: np.ndarray, image_shape: Sequence[int], path: str | os.PathLike, ncol: int = 10,
                 title: str | None = None) -> str:
    """Grid of decoded samples (N, H*W), ``ncol`` per row. Returns the PNG path."""
    grid = image_grid(samples, image_shape, ncol=ncol)
    aspect = grid.shape[0] / grid.shape[1]
    fig = _figure((7, max(2.0, 7 * aspect + 0.6)))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or "samples: decoder mean at z ~ N(0, I)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_latent(mu: np.ndarray, labels: np.ndarray | None, path: str | os.PathLike, title: str | None = None) -> str:
    """Scatter of latent means mu (N, Z) coloured by ``labels`` (N,) or one colour if None.

    Z = 1: mu against a small deterministic jitter; Z = 2: the means themselves; Z > 2: the
    projection on the first two principal components, with their explained variance in the
    title. Returns the PNG path.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mu: expected shape (N, Z), got {mu.shape}")
    z_dim = mu.shape[1]
    if z_dim == 1:
        pts = np.stack([mu[:, 0], np.random.default_rng(0).uniform(-0.5, 0.5, mu.shape[0])], axis=1)
        xl, yl, head = "z1 (mean)", "jitter", "latent means (Z = 1)"
    elif z_dim == 2:
        pts, xl, yl, head = mu, "mu_1", "mu_2", "validation latent means"
    else:
        pts, ev = pca_2d(mu)
        xl, yl = f"PC1 ({100 * ev[0]:.1f}%)", f"PC2 ({100 * ev[1]:.1f}%)"
        head = f"validation latent means, PCA of Z = {z_dim} to 2-D (explained variance {100 * ev.sum():.1f}%)"
    fig = _figure((7, 6))
    ax = fig.add_subplot(1, 1, 1)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape[0] != mu.shape[0]:
            raise ValueError(f"labels: expected {mu.shape[0]} labels, got {labels.shape[0]}")
        classes = np.unique(labels)
        cmap = _colormap("tab10" if classes.size <= 10 else "tab20")
        for i, c in enumerate(classes):
            m = labels == c
            ax.scatter(pts[m, 0], pts[m, 1], s=10, color=cmap(i % cmap.N), label=str(c), alpha=0.8, linewidths=0)
        ax.legend(markerscale=3, fontsize=8, title="label", loc="best")
    else:
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, linewidths=0)
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title(title or head, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def _colormap(name: str) -> Any:
    return matplotlib.colormaps[name]


def plot_manifold(decode: Callable[[np.ndarray], np.ndarray], image_shape: Sequence[int], path: str | os.PathLike,
                  n: int = 20, title: str | None = None) -> str:
    """Decoded images over an n x n grid of 2-D latent points on N(0,1) quantiles.

    ``decode(z)`` maps z (n*n, 2) to images (n*n, H*W) (e.g. ``vae.decode_mean``); the grid is
    ``manifold_z(n)`` (z1 left to right, z2 bottom to top). Returns the PNG path.
    """
    z = manifold_z(n)
    imgs = np.asarray(decode(z))
    grid = image_grid(imgs, image_shape, ncol=n, pad=0)
    fig = _figure((8, 8 * grid.shape[0] / grid.shape[1] + 0.5))
    ax = fig.add_subplot(1, 1, 1)
    q = z[:n, 0]
    h, w = (int(s) for s in image_shape)
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest",
              extent=(-0.5, n * w - 0.5, n * h - 0.5, -0.5))
    ticks = [0, n // 2, n - 1]
    ax.set_xticks([t * w + w / 2 for t in ticks], [f"{q[t]:.2f}" for t in ticks])
    ax.set_yticks([t * h + h / 2 for t in ticks], [f"{q[::-1][t]:.2f}" for t in ticks])
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title(title or f"decoded latent manifold, z on a {n}x{n} grid of N(0,1) quantiles", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_toy(x: np.ndarray, x_rec: np.ndarray, samples: np.ndarray, path: str | os.PathLike,
             labels: np.ndarray | None = None, title: str | None = None) -> str:
    """Three scatter panels for 2-D data: data, reconstructions, samples; each (N, 2).

    The panels share their axis limits so that shapes can be compared. Returns the PNG path.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (x, x_rec, samples)]
    for name, a in zip(("x", "x_rec", "samples"), arrays):
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"{name}: expected shape (N, 2), got {a.shape}")
    allpts = np.concatenate(arrays)
    finite = allpts[np.all(np.isfinite(allpts), axis=1)]
    lo, hi = (finite.min(axis=0), finite.max(axis=0)) if finite.size else (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    fig = _figure((13, 4.4))
    axes = fig.subplots(1, 3)
    names = ("data (validation)", "reconstructions (decoder mean at mu(x))", "samples (decoder mean, z ~ N(0, I))")
    for ax, a, name in zip(axes, arrays, names):
        c = labels if (labels is not None and a is not arrays[2] and len(labels) == len(a)) else None
        ax.scatter(a[:, 0], a[:, 1], s=4, c=c, cmap="tab10" if c is not None else None, alpha=0.6, linewidths=0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(name, fontsize=10)
        ax.set_aspect("equal", adjustable="box")
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_class_rows(decode: Callable[[np.ndarray, int], np.ndarray], x: np.ndarray, z: np.ndarray,
                    image_shape: Sequence[int], path: str | os.PathLike, n_classes: int = 10,
                    title: str | None = None) -> str:
    """Conditional VAE: each column keeps one z (a validation image's style), each row decodes
    it with another label. ``decode(z, y)`` -> (B, D) decoder means; x: (C, D) the images the
    C latents came from (drawn in the first row); z: (C, Z). Returns the PNG path.
    """
    x, z = np.asarray(x), np.asarray(z)
    if x.shape[0] != z.shape[0]:
        raise ValueError(f"z: expected one latent per image ({x.shape[0]}), got {z.shape[0]}")
    rows = [x] + [np.asarray(decode(z, c)) for c in range(n_classes)]
    grid = image_grid(np.concatenate(rows), image_shape, ncol=x.shape[0])
    h, _ = (int(s) for s in image_shape)
    aspect = grid.shape[0] / grid.shape[1]
    fig = _figure((max(3.0, 0.75 * x.shape[0] + 1.0), max(3.0, (0.75 * x.shape[0] + 1.0) * aspect + 0.5)))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(h + 1) * r + h / 2 for r in range(n_classes + 1)])
    ax.set_yticklabels(["input"] + [f"y={c}" for c in range(n_classes)], fontsize=8)
    ax.axhline(h + 0.5, color="tab:red", lw=1.2)
    ax.set_title(title or "same z (column: a validation image's style), label changed row by row", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_codebook_usage(history: Mapping[str, Sequence[float]], codebook_size: int, path: str | os.PathLike,
                        title: str | None = None) -> str:
    """VQ-VAE: perplexity of the codes used on the validation set (``val_perplexity``) and, when
    recorded, the number of codebook entries used (``val_codes_used``) and the codebook loss
    (``val_codebook``), per epoch. Returns the PNG path."""
    epochs = np.asarray(history.get("epoch", []), dtype=float)
    if epochs.size == 0 or "val_perplexity" not in history:
        raise ValueError("history: expected per-epoch 'epoch' and 'val_perplexity' values")
    panels = [k for k in ("val_perplexity", "val_codes_used", "val_codebook") if k in history]
    labels = {"val_perplexity": "perplexity of code usage", "val_codes_used": "codebook entries used",
              "val_codebook": "codebook loss ||sg(z_e) - e||^2"}
    fig = _figure((4 * len(panels), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, key in zip(axes, panels):
        ax.plot(epochs, np.asarray(history[key], dtype=float), "o-", ms=3, label="validation")
        if key != "val_codebook":
            ax.axhline(codebook_size, color="grey", ls=":", label=f"K = {codebook_size}")
            ax.set_ylim(0, codebook_size * 1.08)
        ax.set_xlabel("epoch")
        ax.set_title(labels[key], fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# glue for a trained model
# ----------------------------------------------------------------------------------------------
def _vq_figures(vae: Any, x_val: np.ndarray, out_dir: str, history: Mapping[str, Sequence[float]],
                image_shape: Sequence[int] | None, n_recon: int) -> dict[str, str]:
    paths = {"codebook_usage": plot_codebook_usage(history, vae.codebook_size,
                                                   os.path.join(out_dir, "codebook_usage.png"))}
    if image_shape is not None:
        xr = x_val[:n_recon]
        paths["reconstructions"] = plot_reconstructions(
            xr, vae.reconstruct(xr), image_shape, os.path.join(out_dir, "reconstructions.png"), n=n_recon,
            title=f"VQ-VAE ({vae.n_codes} codes of {vae.codebook_size}): inputs (left of each pair) and "
                  "reconstructions (right)")
    return paths


def _conditional_figures(vae: Any, x_val: np.ndarray, y_val: np.ndarray, out_dir: str,
                         image_shape: Sequence[int] | None, n_recon: int) -> dict[str, str]:
    mu = np.concatenate([vae.encode(x_val[s:s + 1000], y_val[s:s + 1000])[0]
                         for s in range(0, x_val.shape[0], 1000)])
    paths = {"latent": plot_latent(mu, y_val, os.path.join(out_dir, "latent.png"))}
    if image_shape is not None:
        xr, yr = x_val[:n_recon], y_val[:n_recon]
        paths["reconstructions"] = plot_reconstructions(xr, vae.reconstruct(xr, yr), image_shape,
                                                        os.path.join(out_dir, "reconstructions.png"), n=n_recon)
        paths["class_samples"] = plot_class_rows(lambda z, c: vae.decode_mean(z, y=c), x_val[:8], mu[:8],
                                                 image_shape, os.path.join(out_dir, "class_samples.png"),
                                                 n_classes=int(vae.n_classes))
    return paths


def plot_preset_curve(history: Mapping[str, Sequence[float]], path: str | os.PathLike, *, n_train: int,
                      reference: float | None = None, reference_label: str = "",
                      result: Mapping[str, Any] | None = None, note: str = "", title: str | None = None) -> str:
    """A paper-protocol run against the paper: negative ELBO (train and validation) over the
    training examples seen, on a log axis as in Kingma & Welling's Figure 2; the paper's number
    as a dashed line; the run's final importance-sampled -log p(x) (``result``: ``neg_log_px``,
    ``stderr``, ``k``, ``n``) as a point at its last epoch. Returns the PNG path."""
    epochs = np.asarray(history.get("epoch", []), dtype=float)
    if epochs.size == 0:
        raise ValueError("history: expected at least one epoch of values")
    seen = epochs * int(n_train)
    fig = _figure((7.5, 4.5))
    ax = fig.subplots()
    shown = []
    for key, label in (("train_neg_elbo", "train -ELBO"), ("val_neg_elbo", "validation -ELBO")):
        v = np.asarray(history.get(key, []), dtype=float)
        if v.size and np.any(np.isfinite(v)):
            ax.plot(seen[: v.size], v, label=label)
            shown.append(v)
    if reference is not None:
        ax.axhline(reference, ls="--", color="black", lw=1, label=reference_label or f"paper: {reference:g}")
        shown.append(np.array([reference]))
    if result:
        ax.errorbar([seen[-1]], [result["neg_log_px"]], yerr=[result.get("stderr") or 0.0], fmt="o", color="C3",
                    label=f"-log p(x), L_{result['k']} on {result['n']} test images: {result['neg_log_px']:.2f}")
        shown.append(np.array([result["neg_log_px"]]))
    limits = curve_limits(*shown)
    if limits is not None:
        ax.set_ylim(*limits)
    ax.set_xscale("log")
    ax.set_xlabel("training examples seen" + (f"\n{note}" if note else ""))
    ax.set_ylabel("nats (lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def make_figures(vae: Any, x_val: np.ndarray, out_dir: str | os.PathLike, *,
                 history: Mapping[str, Sequence[float]] | None = None, y_val: np.ndarray | None = None,
                 image_shape: Sequence[int] | None = None, seed: int = 0,
                 n_samples: int = 100, n_recon: int = 32, manifold_n: int = 20) -> dict[str, str]:
    """Write the standard figures of a run to ``out_dir`` and return ``{name: path}``.

    Names: ``loss_curves`` (if ``history``), ``reconstructions`` and ``samples`` (image data,
    i.e. ``image_shape`` given) or ``toy`` (2-D data), ``latent``, and ``manifold`` when
    the model has z_dim = 2 and the data are images. x_val: (N, D) data to reconstruct and
    encode (already binarised if the model was trained on binary data); y_val: (N,) labels or
    None. Sampling uses a generator seeded with ``seed``, never ``vae.rng``.

    The family's models get their own: a VQ-VAE (it reports ``val_perplexity``)
    ``reconstructions`` and ``codebook_usage``; a conditional VAE (``needs_labels``; y_val its
    labels) ``reconstructions``, ``class_samples`` (a z decoded with every label) and ``latent``.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: dict[str, str] = {}
    x_val = np.asarray(x_val)
    if history is not None and len(history.get("epoch", [])) > 0:
        paths["loss_curves"] = plot_loss_curves(history, os.path.join(out_dir, "loss_curves.png"))
    if "val_perplexity" in (history or {}):
        return {**paths, **_vq_figures(vae, x_val, out_dir, history, image_shape, n_recon)}
    if getattr(vae, "needs_labels", False):
        return {**paths, **_conditional_figures(vae, x_val, np.asarray(y_val), out_dir, image_shape, n_recon)}
    z_dim = int(vae.config["z_dim"])
    if image_shape is not None:
        xr = x_val[:n_recon]
        paths["reconstructions"] = plot_reconstructions(xr, vae.reconstruct(xr), image_shape,
                                                        os.path.join(out_dir, "reconstructions.png"), n=n_recon)
        paths["samples"] = plot_samples(vae.sample(n_samples, rng=rng), image_shape,
                                        os.path.join(out_dir, "samples.png"))
    else:
        if x_val.shape[1] != 2:
            raise ValueError(f"image_shape: required for data with D = {x_val.shape[1]} != 2")
        m = min(2000, x_val.shape[0])
        xs = x_val[:m]
        paths["toy"] = plot_toy(xs, vae.reconstruct(xs), vae.sample(m, rng=rng), os.path.join(out_dir, "toy.png"),
                                labels=None if y_val is None else np.asarray(y_val)[:m])
    mus = []
    for start in range(0, x_val.shape[0], 1000):
        mu, _ = vae.encode(x_val[start:start + 1000])
        mus.append(mu)
    mu = np.concatenate(mus) if mus else np.zeros((0, z_dim))
    paths["latent"] = plot_latent(mu, y_val, os.path.join(out_dir, "latent.png"))
    if z_dim == 2 and image_shape is not None:
        paths["manifold"] = plot_manifold(vae.decode_mean, image_shape, os.path.join(out_dir, "manifold.png"),
                                          n=manifold_n)
    return paths
