"""Fast paths equal their readable references (to float rounding), over many steps."""
from __future__ import annotations

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import optim
from numpyvae.speed.adam import BlockedAdam


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("n, block", [(1000, 64), (1000, 1000), (70001, 32768)])
def test_adam_blocked_equals_plain_over_many_steps(dtype, rtol, n, block):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(n).astype(dtype)
    fast, plain = BlockedAdam(1e-2, weight_decay=1e-3), optim.Adam(1e-2, weight_decay=1e-3)
    fast.BLOCK = block                 # blocks that do not divide n leave a ragged last block
    pf, pp = p0.copy(), p0.copy()
    for _ in range(300):
        g = (rng.standard_normal(n) * np.exp(rng.uniform(-6, 2, n)) + 0.05 * pf).astype(dtype)
        fast.step(pf, g)
        plain.step(pp, g.copy())
    assert pf.dtype == pp.dtype == dtype
    moved = np.abs(pp - p0)
    assert moved.mean() > 0.1                       # 300 steps of lr 1e-2 went somewhere
    np.testing.assert_allclose(pf, pp, rtol=rtol, atol=rtol * moved.max())
    for name in ("m", "v"):
        np.testing.assert_allclose(getattr(fast, name), getattr(plain, name), rtol=rtol,
                                   atol=rtol * np.abs(getattr(plain, name)).max())


def test_adam_blocked_detects_a_wrong_factor():
    """The comparison above can fail: a fast path with eps not rescaled drifts off the plain one."""
    rng = np.random.default_rng(1)
    p = rng.standard_normal(500)
    fast, plain = BlockedAdam(1e-2, eps=1e-2), optim.Adam(1e-2, eps=1e-2)
    pf, pp = p.copy(), p.copy()
    fast.eps = 1e-2 / np.sqrt(1 - 0.999)       # as if eps sqrt(c2) had been dropped at t = 1
    for _ in range(5):
        g = rng.standard_normal(500) * 1e-2
        fast.step(pf, g)
        plain.step(pp, g)
    assert not np.allclose(pf, pp, rtol=1e-6, atol=0)


def test_adam_fast_falls_back_on_non_contiguous_params():
    base = np.arange(20.0)
    view = base[::2]                        # reshape(-1) of this would be a copy
    before = view.copy()
    BlockedAdam(0.1).step(view, np.ones(10))
    np.testing.assert_allclose(view, before - 0.1, rtol=1e-6)


def test_vae_training_steps_agree_between_adam_paths():
    """Ten VAE steps with either path end at the same parameters (float64, same noise)."""
    x = (np.random.default_rng(2).uniform(size=(16, 12)) < 0.4).astype(float)
    runs = []
    for fast in (True, False):
        vae = nv.VAE(12, 3, hidden=(8,), seed=0)
        opt = BlockedAdam(1e-2) if fast else optim.Adam(1e-2)
        for _ in range(10):
            vae.forward(x)
            vae.backward()
            opt.step(vae.flat_params, vae.flat_grads)
        runs.append(vae.flat_params.copy())
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-9, atol=1e-12)
