"""Fast paths equal their readable references (to float rounding), over many steps."""
from __future__ import annotations

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import optim
from numpyvae.speed.adam import BlockedAdam


@pytest.mark.slow
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_flush_zeroes_what_adams_does_without_a_buffer_sized_temporary(dtype):
    """``BlockedAdam``'s flush zeroes exactly the entries ``Adam``'s one-line flush
    does, in every block (the ragged last one too), on flushing steps only, and makes no
    temporary the size of the buffer (the split step's processes flush their halves)."""
    import tracemalloc
    rng = np.random.default_rng(3)
    n = 20 * BlockedAdam.BLOCK + 123
    tiny = optim._tiny(dtype)
    m = rng.standard_normal(n).astype(dtype)
    v = np.abs(rng.standard_normal(n)).astype(dtype)
    small = np.r_[rng.choice(n, 400, replace=False), n - 1, BlockedAdam.BLOCK]
    m[small] = (tiny * rng.uniform(-0.9, 0.9, small.size)).astype(dtype)
    v[small[::2]] = (tiny * 0.5) if dtype == np.float64 else np.float32(tiny * 0.5)
    fast, plain = BlockedAdam(), optim.Adam()
    period = min(optim._flush_period(fast.b1), optim._flush_period(fast.b2))
    for t, flushes in ((period - 1, False), (period, True)):
        fast.t = plain.t = t
        mf, vf, mp, vp = m.copy(), v.copy(), m.copy(), v.copy()
        tracemalloc.start()
        fast._flush_moments(mf, vf)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        plain._flush_moments(mp, vp)
        plain_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.array_equal(mf, mp) and np.array_equal(vf, vp)
        assert np.count_nonzero(mf == 0) == (small.size if flushes else np.count_nonzero(m == 0))
        assert np.count_nonzero(vf == 0) == (small[::2].size if flushes else 0)
        assert peak < m.nbytes / 8
        assert plain_peak > (m.nbytes if flushes else 0)      # the one-line form's |m| is seen


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
