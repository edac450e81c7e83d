"""Disentanglement, measured against known factors: MIG, the FactorVAE score, DCI; traversals.

A representation here is codes (N, L) for images whose generating factors (N, F) are known
(integer indices per factor, as ``numpyvae.data.shapes`` draws them). For a VAE the codes are
the encoder means. Each score is 1 for a code that copies each factor into its own dimension;
MIG and DCI are near 0 for noise, the FactorVAE score falls to the chance level of its vote.
Note 16 gives the definitions and where each one fails.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["discretize", "mutual_information", "mig", "factor_vae_score", "dci", "traverse",
           "save_traversal_png", "save_traversal_gif"]


def discretize(codes, n_bins=20):
    """Each column of codes (N, L) cut into n_bins equal-width bins -> integer bins (N, L).

    Derivation: derivations/16_disentangling.md, eq. (16.3)
    """
    codes = np.asarray(codes, dtype=np.float64)
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    width = np.where(hi > lo, (hi - lo) / n_bins, 1.0)
    return np.minimum(((codes - lo) / width).astype(np.int64), n_bins - 1)


def _entropy(a):
    _, counts = np.unique(a, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information(a, b):
    """I(a; b) in nats of two integer arrays (N,), from their joint histogram.

    Derivation: derivations/16_disentangling.md, eq. (16.3)
    """
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])))


def _check(codes, factors):
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"codes (N, L) and factors (N, F) must be 2-D with equal N, "
                         f"got {codes.shape} and {factors.shape}")
    return codes, factors


def mig(codes, factors, n_bins=20):
    """Mutual information gap: mean over factors k of (I_(1)k - I_(2)k) / H(v_k).

    I_(1)k >= I_(2)k are the two largest I(z_j; v_k) over latent dimensions j, each code
    dimension binned by ``discretize``. Factors with a single value (H = 0) are skipped.
    Returns (score, gaps per factor (F,), I (L, F)).

    Derivation: derivations/16_disentangling.md, eq. (16.3)
    """
    codes, factors = _check(codes, factors)
    bins = discretize(codes, n_bins)
    L, F = codes.shape[1], factors.shape[1]
    info = np.array([[mutual_information(bins[:, j], factors[:, k]) for k in range(F)] for j in range(L)])
    h = np.array([_entropy(factors[:, k]) for k in range(F)])
    top = np.sort(info, axis=0)[::-1]
    second = top[1] if L > 1 else np.zeros(F)
    gaps = np.where(h > 0, (top[0] - second) / np.where(h > 0, h, 1), np.nan)
    return float(np.nanmean(gaps)), gaps, info


def factor_vae_score(represent, sample_factors, rng, n_votes=800, batch=64, n_scale=5000,
                     active_var=0.05):
    """Kim & Mnih's score: accuracy of a majority-vote classifier from the least-varying
    dimension to the factor that was held fixed.

    represent(factors (n, F)) -> codes (n, L); sample_factors(n, rng) -> factors (n, F).
    Codes are divided by their standard deviation over n_scale draws; dimensions whose variance
    (before that) is below ``active_var`` are collapsed and never vote. Each vote: a factor k,
    ``batch`` draws with v_k held at one value, d = argmin_j Var(z_j / s_j). n_votes train the
    classifier (d -> its most frequent k) and n_votes more measure its accuracy.
    Returns (score, votes (L, F) of the training half).

    Derivation: derivations/16_disentangling.md, eq. (16.4)
    """
    codes = np.asarray(represent(sample_factors(n_scale, rng)), dtype=np.float64)
    var = codes.var(axis=0)
    scale = np.sqrt(np.where(var > 0, var, 1.0))
    active = var >= active_var
    L, F = codes.shape[1], sample_factors(1, rng).shape[1]

    def vote():
        k = int(rng.integers(F))
        f = sample_factors(batch, rng)
        f[:, k] = f[0, k]
        v = (np.asarray(represent(f), dtype=np.float64) / scale).var(axis=0)
        return int(np.argmin(np.where(active, v, np.inf))), k

    if not active.any():
        return 0.0, np.zeros((L, F), np.int64)
    votes = np.zeros((L, F), np.int64)
    for _ in range(n_votes):
        d, k = vote()
        votes[d, k] += 1
    guess = votes.argmax(axis=1)
    right = sum(guess[d] == k for d, k in (vote() for _ in range(n_votes)))
    return right / n_votes, votes


def dci(codes, factors, ridge=1e-3):
    """Eastwood & Williams' disentanglement and completeness, with a linear probe.

    For each factor k a ridge regression from the standardised codes to the standardised
    factor index v_k; the importance R_jk = |W_jk|. Disentanglement: 1 minus
    the entropy (base F) of each row of R normalised, weighted by the row's share of R;
    completeness: 1 minus the entropy (base L) of each column. Returns (D, C, R (L, F)).

    Derivation: derivations/16_disentangling.md, eq. (16.5)
    """
    codes, factors = _check(codes, factors)
    z = codes - codes.mean(0)
    sd = z.std(0)
    z = z / np.where(sd > 0, sd, 1.0)
    L, F = z.shape[1], factors.shape[1]
    gram = z.T @ z + ridge * len(z) * np.eye(L)
    R = np.zeros((L, F))
    for k in range(F):
        v = factors[:, k] - factors[:, k].mean()
        sv = v.std()
        R[:, k] = np.abs(np.linalg.solve(gram, z.T @ (v / (sv if sv > 0 else 1.0))))

    def one_minus_entropy(p, base):
        if base < 2:
            return np.ones(p.shape[0])
        p = p / np.maximum(p.sum(1, keepdims=True), 1e-300)
        h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=1) / np.log(base)
        return 1 - h

    rho = R.sum(1) / max(R.sum(), 1e-300)
    D = float(np.sum(rho * one_minus_entropy(R, F)))
    C = float(np.mean(one_minus_entropy(R.T, L)))
    return D, C, R


def traverse(decode_mean, z_ref, values):
    """Decoded traversals: row j sets dimension j of z_ref (Z,) to each of ``values`` (T,).

    decode_mean(z (n, Z)) -> images (n, D). Returns images (Z, T, D).

    Derivation: derivations/16_disentangling.md, eq. (16.6)
    """
    z_ref = np.asarray(z_ref, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    Z, T = z_ref.shape[0], len(values)
    z = np.repeat(np.repeat(z_ref[None, None], Z, 0), T, 1)         # (Z, T, Z)
    z[np.arange(Z), :, np.arange(Z)] = values
    return np.asarray(decode_mean(z.reshape(Z * T, Z))).reshape(Z, T, -1)


def save_traversal_png(images, image_shape, path, row_labels=None, values=None, title=None):
    """A grid of traversals (Z, T, D): one row per latent dimension, one column per value.

    Derivation: derivations/16_disentangling.md, eq. (16.6)
    """
    Z, T, _ = images.shape
    H, W = image_shape
    grid = np.ones((Z * (H + 1), T * (W + 1)))
    for j in range(Z):
        for t in range(T):
            grid[j * (H + 1):j * (H + 1) + H, t * (W + 1):t * (W + 1) + W] = images[j, t].reshape(H, W)
    fig = Figure(figsize=(0.55 * T + 1.8, 0.55 * Z + 0.8))     # no pyplot: no GUI backend involved
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks([j * (H + 1) + H / 2 for j in range(Z)])
    ax.set_yticklabels(row_labels if row_labels is not None else [f"z[{j}]" for j in range(Z)], fontsize=7)
    if values is not None:
        ax.set_xticks([t * (W + 1) + W / 2 for t in range(T)])
        ax.set_xticklabels([f"{v:+.1f}" for v in values], fontsize=7)
    else:
        ax.set_xticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def save_traversal_gif(images, image_shape, path, scale=3, ms=120):
    """An animated GIF of the traversals (Z, T, D): frame t shows every dimension at value t,
    side by side, and the animation runs forward and back.

    Derivation: derivations/16_disentangling.md, eq. (16.6)
    """
    Z, T, _ = images.shape
    H, W = image_shape
    frames = []
    for t in list(range(T)) + list(range(T - 2, 0, -1)):
        strip = np.full((H, Z * (W + 2)), 0.25)              # light grey between the tiles
        for j in range(Z):
            strip[:, j * (W + 2) + 1:j * (W + 2) + 1 + W] = images[j, t].reshape(H, W)
        pix = (255 * (1 - np.clip(strip, 0, 1))).astype(np.uint8)
        frames.append(Image.fromarray(pix).resize((pix.shape[1] * scale, H * scale), Image.NEAREST))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return path
