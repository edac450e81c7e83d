"""The fused kernels equal the plain core functions they replace, load without numba from a
compiled module kept on disk, and switch off cleanly.

Tolerances are stated per test in units of the dtype's machine epsilon ``u`` (2^-23 for float32,
2^-52 for float64), each the textbook bound for the operations the two sides do differently:
a few roundings per element for elementwise work (same formulas, operations grouped
differently), and (n - 1) u times the sum of the magnitudes for a sum of n terms (recursive
summation; the kernels add in float64, NumPy in the dtype, pairwise or row after row). A wrong
factor, sign or dropped term is many orders of magnitude beyond these bounds.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyvae import kl as kl_mod
from numpyvae import layers, likelihoods, optim, reparam
from numpyvae.speed import _aot as fused_aot
from numpyvae.speed import fused

numba_missing = importlib.util.find_spec("numba") is None
needs_numba = pytest.mark.skipif(numba_missing, reason="numba is not installed (the 'fast' extra)")
needs_pycc = pytest.mark.skipif(numba_missing or not fused_aot._has_pycc(),
                                reason="numba's ahead-of-time compiler (numba.pycc) is not installed")
DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def _fresh_switch():
    """Each test starts from the module's real state and leaves it as it found it."""
    saved = (fused._kernels, fused.reason, fused.source, fused.load_seconds, fused._sgemm)
    yield
    fused._kernels, fused.reason, fused.source, fused.load_seconds, fused._sgemm = saved


def _arr(draw, shape, lo, hi, dtype, seed_name="seed"):
    seed = draw(st.integers(0, 2**32 - 1), label=seed_name)
    rng = np.random.default_rng(seed)
    a = rng.uniform(lo, hi, shape)
    if draw(st.booleans(), label="with zeros"):            # exact zeros: ReLU's edge, g = 0 in Adam
        a[rng.random(shape) < 0.2] = 0
    return a.astype(dtype)


@st.composite
def shapes(draw):
    return (draw(st.integers(1, 3), label="K"), draw(st.integers(1, 6), label="B"),
            draw(st.integers(1, 40), label="D"))


def _u(dtype):
    return float(np.finfo(dtype).eps)


# ------------------------------------------------------------------------ Bernoulli
@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(data=st.data(), shp=shapes(), scale=st.sampled_from([1.0, -0.25, 1 / 128]))
def test_bernoulli_equals_plain(dtype, data, shp, scale):
    K, B, D = shp
    logits = _arr(data.draw, (K, B, D), -30, 30, dtype)
    x = _arr(data.draw, (B, D), 0, 1, dtype, "x seed")
    if data.draw(st.booleans(), label="binary x"):
        x = (x > 0.5).astype(dtype)
    assert fused.available()
    logp, grad = fused.bernoulli_log_prob_and_grad(x, logits, scale)
    ref_logp = likelihoods.bernoulli_log_prob(x, logits)
    ref_grad = scale * likelihoods.bernoulli_log_prob_grad(x, logits)
    assert logp.dtype == grad.dtype == dtype and logp.shape == (K, B) and grad.shape == logits.shape
    u = _u(dtype)
    # the sum over D terms x l - max(l, 0) - log1p(e): both sides use NumPy's exp and log1p, so
    # they differ by the few roundings of each term and the order of the sum
    mag = np.sum(np.abs(x * logits) + np.abs(logits) + np.log1p(np.exp(-np.abs(logits))), axis=-1)
    assert np.all(np.abs(logp - ref_logp) <= (D + 8) * u * mag)
    # sigmoid as 0.5 + 0.5 tanh(l / 2) against 1 / (1 + e): each within a few u of the truth in
    # absolute terms (its values lie in [0, 1]), and x - sigmoid adds one rounding
    assert np.all(np.abs(grad - ref_grad) <= 8 * u * (np.abs(x) + 1) * abs(scale))
    # the 2-D form (one sample) is the 3-D one with K = 1
    lp2, g2 = fused.bernoulli_log_prob_and_grad(x, np.ascontiguousarray(logits[0]), scale)
    np.testing.assert_array_equal(lp2, logp[0])
    np.testing.assert_array_equal(g2, grad[0])


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(data=st.data(), shp=shapes(), scale=st.sampled_from([1.0, -0.25, 1 / 128]),
       spread=st.sampled_from([3.0, 30.0, 120.0]))
def test_bernoulli_output_equals_bias_then_plain(dtype, data, shp, scale, spread):
    K, B, D = shp
    hw = _arr(data.draw, (K, B, D), -spread, spread, dtype)
    b = _arr(data.draw, (D,), -2, 2, dtype, "b seed")
    x = (_arr(data.draw, (B, D), 0, 1, dtype, "x seed") > 0.5).astype(dtype)
    logits = hw.copy()
    logp, grad, db = fused.bernoulli_output(x, logits, b, scale)
    lg = hw + b                                # Linear.forward's sum, in the dtype
    np.testing.assert_array_equal(logits, lg)   # the logits are left in place, bit for bit
    ref_logp = likelihoods.bernoulli_log_prob(x, lg)
    ref_grad = scale * likelihoods.bernoulli_log_prob_grad(x, lg)
    assert logp.shape == (K, B) and grad.shape == lg.shape and db.shape == (D,)
    assert logp.dtype == grad.dtype == db.dtype == dtype
    u = _u(dtype)
    # exp and log1p from the kernel's polynomials (float32) or NumPy (float64), each within
    # about 1 u; then the same few roundings a term and a sum of D terms as above
    mag = np.sum(np.abs(x * lg) + np.abs(lg) + np.log1p(np.exp(-np.abs(lg))), axis=-1)
    assert np.all(np.abs(logp - ref_logp) <= (D + 8) * u * mag)
    assert np.all(np.abs(grad - ref_grad) <= 8 * u * (np.abs(x) + 1) * abs(scale))
    # the bias's gradient: the kernel's own grad summed row after row, as Linear.backward does
    ref_db = ref_grad.reshape(K * B, D).sum(axis=0)
    assert np.all(np.abs(db - ref_db) <= (K * B + 8) * u * np.abs(ref_grad).reshape(K * B, D).sum(axis=0)
                  + 8 * u * abs(scale) * K * B)


_F32_FUNCS = {   # name: (grid, exact in float64, bound in float32 roundings of the result)
    "exp_f32": (np.linspace(-80, 88, 400_001), np.exp, 1.0),
    "expm1_f32": (np.concatenate([np.linspace(-80, 88, 400_001), np.geomspace(1e-30, 1, 50_001),
                                  -np.geomspace(1e-30, 1, 50_001)]), np.expm1, 3.0),
    "log1p_unit_f32": (np.concatenate([np.geomspace(1e-30, 1e-3, 50_001), np.linspace(0, 1, 400_001)]),
                       np.log1p, 1.5),
    "tanh_f32": (np.concatenate([np.linspace(-12, 12, 400_001), np.geomspace(1e-30, 1, 50_001)]),
                 np.tanh, 1.5),
}


@needs_numba
@pytest.mark.parametrize("name", sorted(_F32_FUNCS))
def test_the_kernels_float32_exp_log1p_and_tanh_are_within_a_rounding_or_so(name):
    """On a dense grid (and its smallest numbers), each of ``_numba``'s float32 functions is
    within ``bound`` roundings of the exact value in float64; NumPy's own are within 1. A wrong
    coefficient, a range reduction off by one or a dropped term is off by thousands."""
    import numba

    from numpyvae.speed import _numba
    f = getattr(_numba, name)
    grid, exact_fn, bound = _F32_FUNCS[name]
    t = grid.astype(np.float32)

    @numba.njit
    def each(t, out):
        for i in range(t.size):
            out[i] = f(t[i])
    out = np.empty_like(t)
    each(t, out)
    exact = exact_fn(t.astype(np.float64))
    err = np.abs(out - exact) / np.maximum(np.abs(exact), np.finfo(np.float32).tiny)
    assert out.dtype == np.float32
    assert err.max() <= bound * _u(np.float32), (t[err.argmax()], out[err.argmax()], exact[err.argmax()])
    if name in ("exp_f32", "expm1_f32"):   # held to [-80, 88]: see their docstrings
        np.testing.assert_array_equal(f(np.float32(-300)), f(np.float32(-80)))
        np.testing.assert_array_equal(f(np.float32(300)), f(np.float32(88)))


# ---------------------------------------------------------- bias and activation
@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "tanh"])
@settings(max_examples=25)
@given(data=st.data(), shp=shapes())
def test_bias_act_equals_linear_then_activation(dtype, act, data, shp):
    _, B, H = shp
    u_f32 = _u(np.float32)
    xw = _arr(data.draw, (B, H), -3, 3, dtype)
    b = _arr(data.draw, (H,), -3, 3, dtype, "b seed")
    y = fused.bias_act_forward(xw.copy(), b, act)
    layer = layers.make_activation(act)
    ref = layer.forward(xw + b)              # Linear.forward adds b, then the activation
    if act == "relu" or dtype == np.float64:
        # one IEEE addition, then max(., 0) or NumPy's own tanh on the same sums: bit for bit
        np.testing.assert_array_equal(y, ref)
    else:
        # float32 tanh is the kernels' own polynomial: within 2 u of the exact tanh of the same
        # float32 sums, as NumPy's is within 1 u (tanh_f32's test below looks closer)
        exact = np.tanh((xw + b).astype(np.float64))
        assert np.all(np.abs(y - exact) <= 2 * u_f32 * np.abs(exact))

    dy = _arr(data.draw, (B, H), -2, 2, dtype, "dy seed")
    dx, db = fused.act_bias_backward(dy, ref, act)
    ref_dx = layer.backward(dy)
    u = _u(dtype)
    # dy [y > 0] exactly; dy (1 - y^2): the same three roundings in the same order
    assert np.all(np.abs(dx - ref_dx) <= 3 * u * np.abs(dy) * (1 + ref * ref))
    ref_db = ref_dx.sum(axis=0)              # what Linear.backward writes as db
    assert np.all(np.abs(db - ref_db) <= (B + 1) * u * np.abs(ref_dx).sum(axis=0))
    assert dx.dtype == db.dtype == dtype


# --------------------------------------------------------- reparameterization and KL
@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(data=st.data(), shp=shapes(), c=st.sampled_from([0.0, 1.0, 1 / 100, 3.5]))
def test_reparameterize_kl_equals_plain(dtype, data, shp, c):
    K, B, Z = shp
    mu = _arr(data.draw, (B, Z), -4, 4, dtype)
    logvar = _arr(data.draw, (B, Z), -8, 4, dtype, "logvar seed")
    eps = _arr(data.draw, (K, B, Z), -3, 3, dtype, "eps seed")
    z, kl = fused.reparameterize_kl(mu, logvar, eps)
    ref_z = reparam.reparameterize(mu, logvar, eps)
    ref_kl = kl_mod.kl_normal_std(mu, logvar)
    u = _u(dtype)
    sigma = np.exp(0.5 * logvar.astype(np.float64))
    # exp from two libraries (each within 2 u), one multiply, one add
    assert np.all(np.abs(z - ref_z) <= 6 * u * (np.abs(mu) + sigma * np.abs(eps)))
    # a sum of Z terms mu^2 + expm1(v) - v, each a few roundings
    mag = np.sum(mu.astype(np.float64) ** 2 + np.abs(np.expm1(logvar)) + np.abs(logvar), axis=-1)
    assert np.all(np.abs(kl - ref_kl) <= (Z + 8) * u * mag)
    assert np.all(kl >= 0)                   # expm1(v) - v >= 0 holds in the kernel too

    dz = _arr(data.draw, (K, B, Z), -2, 2, dtype, "dz seed")
    dmu, dlogvar = fused.reparameterize_kl_backward(dz, mu, logvar, eps, c)
    ref_dmu, ref_dlogvar = reparam.reparameterize_backward(dz, logvar, eps)
    gmu, glogvar = kl_mod.kl_normal_std_grad(mu, logvar)
    ref_dmu = ref_dmu + c * gmu
    ref_dlogvar = ref_dlogvar + c * glogvar
    # sums over K samples plus one scaled term
    bound_mu = (K + 4) * u * (np.abs(dz).sum(axis=0) + abs(c) * np.abs(mu))
    assert np.all(np.abs(dmu - ref_dmu) <= bound_mu)
    bound_lv = (K + 8) * u * (sigma * np.abs(dz * eps).sum(axis=0) + abs(c) * np.abs(np.expm1(logvar)))
    assert np.all(np.abs(dlogvar - ref_dlogvar) <= bound_lv)
    # the fused step hands the backward the forward's sigma and expm1 (for float32 the kernel's
    # own, each within a few u): the same bounds hold
    z2, kl2, sig, em1 = fused._reparameterize_kl(mu, logvar, eps)
    np.testing.assert_array_equal(z2, z)
    np.testing.assert_array_equal(kl2, kl)
    dmu2, dlogvar2 = fused.reparameterize_kl_backward(dz, mu, logvar, eps, c, sig, em1)
    assert np.all(np.abs(dmu2 - ref_dmu) <= bound_mu)
    assert np.all(np.abs(dlogvar2 - ref_dlogvar) <= bound_lv)


# ------------------------------------------------------------------------------- Adam
def _adam_flush(opt, t, dtype):
    """The thresholds the plain Adam flushes with at step t (0: no flush at this step)."""
    period = min(optim._flush_period(opt.b1), optim._flush_period(opt.b2))
    if t % period:
        return 0.0, 0.0
    tiny = optim._tiny(dtype)
    return tiny, (tiny if opt.eps > 0 else 0.0)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300),
       lr=st.sampled_from([1e-3, 1e-2]), steps=st.sampled_from([3, 160]))
def test_adam_equals_plain_adam(dtype, seed, n, lr, steps):
    """160 steps cross the plain Adam's flush of tiny moments (every 157 steps at b1 = 0.9)."""
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(n).astype(dtype)
    plain = optim.Adam(lr)
    if "fast" in optim.Adam.__init__.__code__.co_varnames:
        plain = optim.Adam(lr, fast=False)
    tp, tf = theta0.copy(), theta0.copy()
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    gs = rng.standard_normal((steps, n)) * np.exp(rng.uniform(-8, 1, (steps, n)))
    gs[:, rng.random(n) < 0.1] = 0           # entries whose moments only decay
    gs[steps // 2:, rng.random(n) < 0.1] = 0
    for t in range(1, steps + 1):
        g = gs[t - 1].astype(dtype)
        plain.step(tp, g)
        fm, fv = _adam_flush(plain, t, dtype)
        fused.adam_update(tf, g, m, v, lr=lr, b1=plain.b1, b2=plain.b2, eps=plain.eps, t=t,
                          flush_m=fm, flush_v=fv)
    u = _u(dtype)
    # each step changes theta by at most lr / (1 - b1^t) <= 10 lr and adds a few roundings of
    # that change and of theta; over T steps these add up to at most T times one step's
    assert np.all(np.abs(tf - tp) <= 8 * steps * u * (np.abs(theta0) + 10 * lr))
    pm, pv = plain.m, plain.v
    assert np.all(np.abs(m - pm) <= 8 * u * np.abs(gs).max(axis=0) + 8 * u * np.abs(pm))
    assert np.all(np.abs(v - pv) <= 8 * u * (gs * gs).max(axis=0) + 8 * u * np.abs(pv))
    assert np.array_equal(m == 0, pm == 0)   # the same entries flushed (or never moved)
    assert np.abs(tp - theta0).max() > 0 or not np.any(gs)


@needs_numba
def test_adam_kernel_catches_a_dropped_bias_correction():
    """The comparison can fail: leaving out 1 - b2^t moves theta far beyond the bound."""
    rng = np.random.default_rng(0)
    theta, g = rng.standard_normal(100), rng.standard_normal(100)
    plain = optim.Adam(1e-2)
    tp, tf = theta.copy(), theta.copy()
    plain.step(tp, g)
    m, v = np.zeros(100), np.zeros(100)
    fused.adam_update(tf, g, m, v, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, t=1)
    assert np.all(np.abs(tf - tp) <= 8 * _u(np.float64) * (np.abs(theta) + 0.1))
    tw = theta.copy()
    fused._adam_kernel(tw, g, np.zeros(100), np.zeros(100), 1e-2, 0.9, 0.999, 0.1, 0.001, 1e-8,
                       0.1, 1.0, 0.0, 0.0)        # c2 = 1: the second correction left out
    assert np.abs(tw - tp).max() > 1e-3


# ---------------------------------------------------------------- switched off cleanly
def _plain_results(x, logits, mu, logvar, eps, dz, xw, b, dy):
    return [
        *fused.bernoulli_log_prob_and_grad(x, logits, 0.5),
        fused.bias_act_forward(xw.copy(), b, "relu"),
        fused.bias_act_forward(xw.copy(), b, "tanh"),
        *fused.act_bias_backward(dy, np.maximum(xw, 0), "relu"),
        *fused.act_bias_backward(dy, np.tanh(xw), "tanh"),
        *fused.reparameterize_kl(mu, logvar, eps),
        *fused.reparameterize_kl_backward(dz, mu, logvar, eps, 0.1),
    ]


def _inputs(dtype=np.float32):
    rng = np.random.default_rng(3)
    x = (rng.random((4, 10)) < 0.3).astype(dtype)
    logits = rng.standard_normal((2, 4, 10)).astype(dtype)
    mu, logvar = (rng.standard_normal((4, 3)).astype(dtype) for _ in range(2))
    eps, dz = (rng.standard_normal((2, 4, 3)).astype(dtype) for _ in range(2))
    xw, dy = (rng.standard_normal((4, 5)).astype(dtype) for _ in range(2))
    b = rng.standard_normal(5).astype(dtype)
    return x, logits, mu, logvar, eps, dz, xw, b, dy


def _core_results(x, logits, mu, logvar, eps, dz, xw, b, dy):
    """The same quantities from the core's functions, as the plain path computes them."""
    relu, tanh = layers.ReLU(), layers.Tanh()
    relu.forward(xw), tanh.forward(xw)
    dx_r, dx_t = relu.backward(dy), tanh.backward(dy)
    dmu, dlv = reparam.reparameterize_backward(dz, logvar, eps)
    gmu, glv = kl_mod.kl_normal_std_grad(mu, logvar)
    return [
        likelihoods.bernoulli_log_prob(x, logits), 0.5 * likelihoods.bernoulli_log_prob_grad(x, logits),
        np.maximum(xw + b, 0), np.tanh(xw + b), dx_r, dx_r.sum(axis=0), dx_t, dx_t.sum(axis=0),
        reparam.reparameterize(mu, logvar, eps), kl_mod.kl_normal_std(mu, logvar),
        dmu + 0.1 * gmu, dlv + 0.1 * glv,
    ]


def _check_plain_path(capsys, why):
    capsys.readouterr()
    args = _inputs()
    got = _plain_results(*args)
    again = _plain_results(*args)                        # a second round: no second message
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert why in err[0] and "plain NumPy path" in err[0]
    assert not fused.available() and why in fused.reason and fused.warm_up() == 0.0
    for a, b, c in zip(got, again, _core_results(*args)):
        np.testing.assert_array_equal(a, c)              # the core's numbers, bit for bit
        np.testing.assert_array_equal(b, c)
    # Adam's plain path against the plain Adam, a few steps
    rng = np.random.default_rng(0)
    th = rng.standard_normal(50).astype(np.float32)
    tp, tf, m, v = th.copy(), th.copy(), np.zeros(50, np.float32), np.zeros(50, np.float32)
    opt = optim.Adam(1e-2)
    for t in range(1, 4):
        g = rng.standard_normal(50).astype(np.float32)
        opt.step(tp, g)
        fused.adam_update(tf, g, m, v, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, t=t)
    assert np.all(np.abs(tf - tp) <= 8 * 3 * _u(np.float32) * (np.abs(th) + 0.1))
    assert len(capsys.readouterr().err.strip().splitlines()) == 0


def test_without_numba_the_plain_path_runs(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "numba", None)      # `import numba` raises ImportError
    monkeypatch.delitem(sys.modules, "numpyvae.speed._numba", raising=False)
    monkeypatch.delattr(sys.modules["numpyvae.speed"], "_numba", raising=False)
    monkeypatch.setenv("NUMPYVAE_CACHE_DIR", str(tmp_path / "cache"))
    fused._kernels, fused.reason = None, ""
    _check_plain_path(capsys, "numba is not installed")
    assert not (tmp_path / "cache").exists()             # nothing was built


@needs_numba
def test_a_compile_failure_switches_to_the_plain_path(monkeypatch, capsys):
    """Neither the compiled module nor numba in process gives kernels that run: one line, plain."""
    def broken(k):
        raise RuntimeError("simulated: no LLVM for this target")
    monkeypatch.setattr(fused, "_warm", broken)
    fused._kernels, fused.reason = None, ""
    _check_plain_path(capsys, "could not compile")


@needs_numba
def test_a_kernel_failing_later_switches_to_the_plain_path(monkeypatch, capsys):
    assert fused.available()
    k = fused._load()

    class Broken:                                        # every kernel raises as a typing error would
        def __getattr__(self, name):
            getattr(k, name)

            def fail(*a):
                raise TypeError(f"simulated: cannot type {name}")
            return fail
    fused._kernels = Broken()
    capsys.readouterr()
    args = _inputs()
    got = _plain_results(*args)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "failed" in err[0], err
    for a, c in zip(got, _core_results(*args)):
        np.testing.assert_array_equal(a, c)


@needs_numba
def test_inputs_the_kernels_do_not_take_go_the_plain_way(capsys):
    x, logits, *_ = _inputs()
    logp, grad = fused.bernoulli_log_prob_and_grad(x.astype(np.float64), logits)   # mixed dtypes
    np.testing.assert_array_equal(logp, likelihoods.bernoulli_log_prob(x.astype(np.float64), logits))
    y = np.ones((4, 6), np.float32)[:, ::2]                                        # not contiguous
    np.testing.assert_array_equal(fused.bias_act_forward(y.copy(), np.zeros(3, np.float32), "relu"), y)
    assert fused.available() and capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="activation must be 'relu' or 'tanh'"):
        fused.bias_act_forward(y.copy(), np.zeros(3, np.float32), "sigmoid")


@needs_numba
def test_warm_up_reports_its_time():
    assert fused.warm_up() > 0


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_flushes_after_the_update(dtype):
    """Moments that decayed below the threshold are stored as 0, after theta used them."""
    tiny = optim._tiny(dtype)
    m0 = np.array([0.5, -0.5, 2.0, -3.0, 1.0, 0.0], dtype) * tiny
    v0 = np.array([3.0, 0.5, 0.9, 4.0, 1.0, 0.0], dtype) * tiny
    g = np.zeros(6, dtype)
    theta = np.zeros(6, dtype)
    m, v = m0.copy(), v0.copy()
    fused.adam_update(theta, g, m, v, lr=1.0, b1=0.9, b2=0.999, eps=0.0, t=5,
                      flush_m=tiny, flush_v=tiny)
    m1, v1 = 0.9 * m0, 0.999 * v0
    # the kernel multiplies in float64 and rounds once: within one rounding of NumPy's product
    np.testing.assert_allclose(m, np.where(np.abs(m1) < tiny, 0, m1), rtol=_u(dtype), atol=0)
    np.testing.assert_allclose(v, np.where(np.abs(v1) < tiny, 0, v1), rtol=_u(dtype), atol=0)
    assert np.all(m[:2] == 0) and np.all(m[2:4] != 0)
    # theta moved by the unflushed moments: entry 0 had m below the threshold and still moved
    assert theta[0] < 0 and theta[1] > 0


# ------------------------------------------------------------- the whole step, fused
def _pair(act, hidden, z_dim, dtype):
    from numpyvae import VAE
    return [VAE(30, z_dim, hidden=hidden, activation=act, seed=4, dtype=dtype) for _ in range(2)]


#: which step object runs: float64 and (without NumPy's BLAS to call) float32 call the kernels
#: one at a time from Python (_Step); float32 with it runs the compiled step
STEPS = [(np.float64, "_Step"), (np.float32, "_Step"), (np.float32, "_CompiledStep")]
needs_compiled_step = pytest.mark.skipif(
    numba_missing or not fused._sgemm_address(),
    reason="NumPy's BLAS is not an OpenBLAS with 64-bit integers the compiled step can call")


def _use(step_name, monkeypatch):
    """Make the fused step of a model attached from now on a ``step_name``."""
    if step_name == "_CompiledStep":
        if not fused._sgemm_address():
            pytest.skip("NumPy's BLAS cannot be called from the compiled step here")
    else:
        monkeypatch.setattr(fused, "_sgemm", 0)


@needs_numba
@pytest.mark.parametrize("dtype, step_name", STEPS)
@pytest.mark.parametrize("act, hidden, z_dim", [("relu", (12,), 3), ("tanh", (10, 8), 4)])
def test_fused_step_equals_the_models_step(dtype, step_name, act, hidden, z_dim, monkeypatch):
    _use(step_name, monkeypatch)
    plain, fast = _pair(act, hidden, z_dim, dtype)
    assert fused.attach(fast)
    rng = np.random.default_rng(0)
    x = (rng.random((7, 30)) < 0.3).astype(dtype)
    eps = rng.standard_normal((2, 7, z_dim)).astype(dtype)
    tp = plain.forward(x, eps=eps, beta=0.7)
    plain.backward()
    tf = fast.forward(x, eps=eps, beta=0.7)
    assert type(fast._cache.get("fused")).__name__ == step_name   # it ran (it did not fall back)
    fast.backward()
    assert fused.available()                   # and no kernel refused on the way
    u = _u(dtype)
    # the same products; the kernels round a few elementwise steps differently (a few u each),
    # carried through at most six layers: far inside 1e3 u of the largest entry
    for name in ("loss", "elbo", "recon", "kl"):
        assert abs(getattr(tf, name) - getattr(tp, name)) <= 1e3 * u * abs(tp.loss), name
    gmax = np.abs(plain.flat_grads).max()
    assert np.all(np.abs(fast.flat_grads - plain.flat_grads) <= 1e3 * u * gmax)
    np.testing.assert_allclose(fast.dmu, plain.dmu, rtol=0, atol=1e3 * u * np.abs(plain.dmu).max())
    # and the check can fail: a gradient left out of one layer is far outside the bound
    wrong = fast.flat_grads.copy()
    wrong[fast.flat_grads.size // 2:] *= 2
    assert not np.all(np.abs(wrong - plain.flat_grads) <= 1e3 * u * gmax)


@needs_numba
@pytest.mark.parametrize("act, dtype, step_name", [
    ("relu", np.float32, "_Step"), ("relu", np.float64, "_Step"), ("tanh", np.float32, "_Step"),
    ("relu", np.float32, "_CompiledStep"), ("tanh", np.float32, "_CompiledStep")])
@pytest.mark.parametrize("fails_in", ["forward", "backward"])
def test_a_kernel_failing_inside_the_fused_step_gives_the_models_own_step(act, dtype, step_name,
                                                                         fails_in, capsys, monkeypatch):
    """The fused step calls its kernels without the public functions' routing, so a kernel
    that refuses (as a typing error would) must switch the kernels off, say so in one line, and
    leave the model's own numbers: nothing half written, in the forward or the backward. (A
    float64 tanh model's forward calls no activation kernel: NumPy's tanh is used there.) The
    compiled step is one kernel call a direction: the call that fails is that one."""
    _use(step_name, monkeypatch)
    plain, fast = _pair(act, (10, 8), 4, dtype)
    assert fused.attach(fast)
    rng = np.random.default_rng(5)
    x = (rng.random((7, 30)) < 0.3).astype(dtype)
    eps = rng.standard_normal((1, 7, 4)).astype(dtype)
    fast.forward(x, eps=eps)                         # a first fused step makes the model's step
    fast.backward()
    assert type(fast._cache["fused"]).__name__ == step_name
    k = fused._load()
    if step_name == "_CompiledStep":
        broken = f"step_{fails_in}"
    else:
        broken = f"{act}_back" if fails_in == "backward" else f"bias_{act}"

    class Broken:
        def __getattr__(self, name):
            if name != broken:
                return getattr(k, name)

            def fail(*a):
                raise TypeError(f"simulated: cannot type {name}")
            return fail
    fused._kernels = Broken()
    capsys.readouterr()
    tf = fast.forward(x, eps=eps, beta=0.7)
    fast.backward()
    tp = plain.forward(x, eps=eps, beta=0.7)
    plain.backward()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fused step failed" in err[0] and "simulated" in err[0], err
    assert not fused.available()
    np.testing.assert_array_equal(fast.flat_grads, plain.flat_grads)     # the model's own step
    if fails_in == "forward":
        assert tf.loss == tp.loss
    else:          # the forward ran fused (its terms to rounding), the gradients are the plain ones
        assert abs(tf.loss - tp.loss) <= 1e3 * _u(dtype) * abs(tp.loss)


@needs_compiled_step
@settings(max_examples=25, deadline=None)
@given(act=st.sampled_from(["relu", "tanh"]),
       hidden=st.lists(st.integers(1, 12), min_size=1, max_size=3).map(tuple),
       z_dim=st.integers(1, 5), k=st.integers(1, 3), b=st.integers(1, 9),
       beta=st.floats(0, 2), seed=st.integers(0, 2**16))
def test_the_compiled_step_makes_the_numbers_of_the_step_it_compiles(act, hidden, z_dim, k, b, beta, seed):
    """``_CompiledStep`` calls the BLAS routine NumPy's matmul calls (sgemm), on the same arrays,
    and the same kernels in the same order as ``_Step``: every output is the same to the last
    bit (the mu and logvar heads' input gradient adds the second product in the BLAS call,
    beta = 1, where ``_Step`` adds it afterwards: one rounding of the same two numbers either
    way). Where a matrix has a side of length 1, NumPy calls the matrix-vector routine instead,
    which sums in another order: there the two agree to rounding, the bound of the test above."""
    from numpyvae import VAE
    runs = []
    for compiled in (False, True):
        vae = VAE(11, z_dim, hidden=hidden, activation=act, seed=seed, dtype=np.float32)
        step = fused._CompiledStep(vae, fused._load(), fused._sgemm) if compiled else fused._Step(
            vae, fused._load())
        rng = np.random.default_rng(seed)
        x = (rng.random((b, 11)) < 0.4).astype(np.float32)
        eps = rng.standard_normal((k, b, z_dim), dtype=np.float32)
        t = step.forward(x, eps, beta)
        step.backward(vae._cache)
        runs.append((t, vae.flat_grads.copy(), vae.dmu, vae.dlogvar))
    (t0, g0, dmu0, dlv0), (t1, g1, dmu1, dlv1) = runs
    assert np.any(g1 != 0)
    if min(hidden + (z_dim, b)) >= 2:
        for name in ("loss", "elbo", "recon", "kl"):
            assert getattr(t1, name) == getattr(t0, name), name
        for name in ("elbo_per_example", "log_px_z", "mu", "logvar", "z"):
            np.testing.assert_array_equal(getattr(t1, name), getattr(t0, name), err_msg=name)
        for a1, a0 in ((g1, g0), (dmu1, dmu0), (dlv1, dlv0)):
            np.testing.assert_array_equal(a1, a0)
    else:
        u = _u(np.float32)
        assert abs(t1.loss - t0.loss) <= 1e3 * u * abs(t0.loss)
        assert np.all(np.abs(g1 - g0) <= 1e3 * u * np.abs(g0).max())


@needs_compiled_step
@pytest.mark.parametrize("fault", ["raises", "other numbers"])
def test_a_compiled_step_that_fails_its_warm_up_is_left_out(fault, capsys, monkeypatch):
    """The warm-up runs the compiled step beside the step of calls on a tiny model: if it raises,
    or its gradients are not the other's (as a BLAS routine called with the wrong arguments would
    give), one line says so and models get ``_Step``; the other kernels stay on."""
    k = fused._load()

    class Faulty:
        def __getattr__(self, name):
            return getattr(k, name)

        def step_backward(self, *a):
            if fault == "raises":
                raise RuntimeError("simulated: a fused kernel stopped")
            k.step_backward(*a)
            a[2][::2] *= 2                         # g, the flat gradients: half of them doubled
    monkeypatch.setattr(fused, "_sgemm", fused._sgemm_address())
    capsys.readouterr()
    fused._warm_step(Faulty())
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compiled whole step could not run" in err[0], err
    assert fused._sgemm == 0 and fused.available()
    from numpyvae import VAE
    vae = VAE(11, 3, hidden=(6,), seed=0, dtype=np.float32)
    assert fused.attach(vae)
    vae.forward((np.random.default_rng(0).random((4, 11)) < 0.4).astype(np.float32))
    assert type(vae._cache["fused"]) is fused._Step
    monkeypatch.setattr(fused, "_sgemm", fused._find_sgemm())
    fused._warm_step(k)                            # the real kernels pass it, saying nothing
    assert capsys.readouterr().err == "" and fused._sgemm


@needs_compiled_step
@pytest.mark.parametrize("bad", ["x's width", "a row past p", "n_enc", "table's columns"])
def test_the_compiled_step_refuses_a_table_that_does_not_fit_its_arrays(bad):
    """The compiled step reads its layers where the table says; what does not fit raises before
    any product reads past an array (numba does not check indices: the step does)."""
    from numpyvae import VAE
    vae = VAE(11, 3, hidden=(6, 5), activation="tanh", seed=0, dtype=np.float32)
    step = fused._CompiledStep(vae, fused._load(), fused._sgemm)
    x = (np.random.default_rng(0).random((4, 11)) < 0.4).astype(np.float32)
    eps = np.random.default_rng(1).standard_normal((1, 4, 3), dtype=np.float32)
    step.forward(x, eps, 1.0)                       # as made, it runs
    if bad == "x's width":
        step.table[0, 1] += 1
    elif bad == "a row past p":
        step.table[-1, 0] = vae.flat_params.size - 3
    elif bad == "n_enc":
        step.n_enc = step.table.shape[0] - 3
    else:
        step.table = np.ascontiguousarray(step.table[:, :3])
    with pytest.raises(RuntimeError, match="shapes do not fit"):
        step.forward(x, eps, 1.0)


@needs_numba
def test_models_the_fused_step_does_not_fit_run_their_own():
    from numpyvae import VAE
    for vae in (VAE(30, 3, hidden=(8,), activation="sigmoid", seed=0),
                VAE(30, 3, hidden=(8,), likelihood="gaussian", seed=0),
                VAE(30, 3, hidden=(), seed=0)):
        assert not fused.fits(vae) and not fused.attach(vae)
        assert "forward" not in vars(vae)
    vae = VAE(30, 3, hidden=(8,), seed=0)
    assert fused.attach(vae)
    x = (np.random.default_rng(0).random((5, 30)) < 0.5).astype(float)
    eps = np.random.default_rng(1).standard_normal((1, 5, 3))
    t = vae.forward(x, eps=eps, kl="mc")          # the Monte Carlo KL: the model's own step
    vae.backward()
    ref = VAE(30, 3, hidden=(8,), seed=0)
    tr = ref.forward(x, eps=eps, kl="mc")
    ref.backward()
    assert t.loss == tr.loss
    np.testing.assert_array_equal(vae.flat_grads, ref.flat_grads)


@needs_numba
@pytest.mark.parametrize("act, hidden", [("relu", (16,)), ("tanh", (12, 10))])
def test_a_fused_training_run_equals_the_plain_run(act, hidden):
    """Five Trainer steps (shuffle, minibatch, step, Adam) with and without the fused path."""
    from numpyvae import VAE
    from numpyvae.training.trainer import TrainConfig, Trainer
    x = (np.random.default_rng(2).random((50, 30)) < 0.3).astype(np.float32)
    runs = []
    for use in (False, True):
        vae = VAE(30, 4, hidden=hidden, activation=act, seed=1, dtype=np.float32)
        opt = optim.Adam(1e-2)
        if use:
            assert fused.attach(vae)
            opt = fused.FusedAdam(1e-2)
        tr = Trainer(vae, x, None, TrainConfig(epochs=1, batch_size=10, progress=False), optimizer=opt)
        tr.fit(1)
        runs.append((vae.flat_params.copy(), tr.history["train_loss"][-1], opt.state_dict()))
    (p0, l0, s0), (p1, l1, s1) = runs
    u = _u(np.float32)
    moved = np.abs(p0 - VAE(30, 4, hidden=hidden, activation=act, seed=1, dtype=np.float32).flat_params)
    assert moved.max() > 1e-3
    # five steps of lr 1e-2 from the same gradients up to rounding: Adam's step, about lr an
    # entry, is where rounding differences show, a few u of it a step
    assert np.all(np.abs(p1 - p0) <= 5 * 1e3 * u * (np.abs(p0) + 1e-2))
    assert abs(l1 - l0) <= 1e3 * u * abs(l0)
    assert s0.keys() == s1.keys() and int(s0["t"]) == int(s1["t"]) == 5


def _bench_peers():
    from pathlib import Path
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        import bench_peers
    finally:
        sys.path.remove(str(bench))
    return bench_peers


@needs_numba
def test_the_peers_benchmark_runs_at_tiny_size():
    """Keeps benchmarks/bench_peers.py from rotting; it times nothing that is asserted."""
    bench_peers = _bench_peers()
    out = bench_peers.run_numpyvae(bench_peers.MODELS["tanh"], 256, 1, 1, True)
    assert out["samples_per_s"] > 0 and np.isfinite(out["final_loss"]) and out["compile_s"] >= 0
    with pytest.raises(SystemExit):
        bench_peers.main(["--sides", "numpyvae,nonsense"])


def test_the_paired_peers_benchmark_times_every_side_every_round(tmp_path, capsys):
    """``bench_peers.py --paired`` at tiny size: each side's worker times one epoch a round on
    the driver's word, and the report gives the ratio round by round (no time is asserted)."""
    bench_peers = _bench_peers()
    out = tmp_path / "paired.json"
    bench_peers.main(["--paired", "--n", "200", "--rounds", "3", "--threads", "1", "--models", "tanh",
                      "--sides", "numpyvae,matmul", "--json", str(out)])
    got = json.loads(out.read_text())["paired"]["tanh|1"]
    assert {s: len(r) for s, r in got["rates"].items()} == {"numpyvae": 3, "matmul": 3}
    assert all(r["wall"] > 0 and r["cpu"] > 0 for rs in got["rates"].values() for r in rs)
    # the worker's own rate is over the epochs it reported, without the waits between them
    walls = sum(200 / r["wall"] for r in got["rates"]["numpyvae"])
    assert got["final"]["numpyvae"]["samples_per_s"] == pytest.approx(600 / walls, rel=1e-6)
    assert "numpyvae/matmul: " in capsys.readouterr().out


# ------------------------------------------------------------- wired into the speed layer
def _speed_run(speed, act="relu", hidden=(16,)):
    from numpyvae import VAE
    from numpyvae.training.trainer import TrainConfig, Trainer
    x = (np.random.default_rng(2).random((60, 30)) < 0.3).astype(np.float32)
    vae = VAE(30, 4, hidden=hidden, activation=act, seed=1, dtype=np.float32)
    tr = Trainer(vae, x, None, TrainConfig(epochs=1, batch_size=10, progress=False),
                 optimizer=optim.Adam(1e-2), speed=speed)
    tr.fit(1)
    return vae, tr


@needs_numba
@pytest.mark.parametrize("act, hidden", [("relu", (16,)), ("tanh", (12, 10))])
def test_the_speed_layer_runs_the_fused_kernels_and_equals_the_plain_run(act, hidden, monkeypatch):
    from numpyvae.speed import Speed
    calls = []
    real = fused.fused_backward
    monkeypatch.setattr(fused, "fused_backward", lambda vae: (calls.append(1), real(vae))[1])
    plain_vae, plain = _speed_run(None, act, hidden)                 # Trainer(model, x).fit()
    assert not calls
    vae, tr = _speed_run(Speed(1), act, hidden)                       # the extra installed: on
    assert isinstance(tr.optimizer, fused.FusedAdam) and len(calls) == 6
    assert "forward" not in vars(vae) and "backward" not in vars(vae)  # detached after fit
    u = _u(np.float32)
    # six steps from the same data and noise: they differ by rounding only (see the test above)
    assert np.all(np.abs(vae.flat_params - plain_vae.flat_params)
                  <= 6 * 1e3 * u * (np.abs(plain_vae.flat_params) + 1e-2))
    assert abs(tr.history["train_loss"][-1] - plain.history["train_loss"][-1]) <= 1e3 * u * abs(
        plain.history["train_loss"][-1])
    np.testing.assert_allclose(tr.optimizer.m, plain.optimizer.m, rtol=0,
                               atol=1e3 * u * np.abs(plain.optimizer.m).max())
    off_vae, off = _speed_run(Speed(1, fused=False), act, hidden)    # switched off: none of it
    assert not isinstance(off.optimizer, fused.FusedAdam) and len(calls) == 6


def test_the_speed_layer_without_numba_is_the_blocked_path(monkeypatch, capsys):
    from numpyvae.speed import Speed
    from numpyvae.speed.adam import BlockedAdam
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba" else _find_spec(name, *a))
    speed = Speed(1)
    assert speed.fused is False
    _, tr = _speed_run(speed)
    assert type(tr.optimizer) is BlockedAdam
    assert capsys.readouterr().err == ""              # not asked for: nothing to say
    with pytest.raises(ValueError, match="fused: expected True, False or None"):
        Speed(1, fused="yes")


_find_spec = importlib.util.find_spec


# ------------------------------------------------- the module compiled ahead of time
def _kernel_results(dtype):
    """Every kernel's output on fixed inputs (the fused functions, and three Adam steps)."""
    args = _inputs(dtype)
    out = _plain_results(*args)
    rng = np.random.default_rng(1)
    theta, m, v = rng.standard_normal(50).astype(dtype), np.zeros(50, dtype), np.zeros(50, dtype)
    for t in range(1, 4):
        fused.adam_update(theta, rng.standard_normal(50).astype(dtype), m, v, lr=1e-2, b1=0.9,
                          b2=0.999, eps=1e-8, t=t)
    return out + [theta, m, v]


def _compiled():
    """The compiled module's kernels, loaded (or built) in the session's cache folder."""
    k = fused._load()
    assert isinstance(k, fused_aot.Kernels), fused.source
    return k


def _reset(monkeypatch, cache):
    monkeypatch.setenv("NUMPYVAE_CACHE_DIR", str(cache))
    fused._kernels, fused.reason, fused.source = None, "", ""


@needs_pycc
def test_the_kernels_come_from_the_compiled_module():
    k = _compiled()
    assert fused.source in ("built", "cache")
    assert k.path.parent.parent == fused_aot.cache_root()
    assert k.path.parent.name == fused_aot.cache_key()
    assert (k.path.parent / "built-for.txt").read_text().count("\n") == len(fused_aot.key_parts())


#: two fused training steps of a small model, from fixed data and noise (run here and in a child)
_TWO_STEPS = r"""
import numpy as np
from numpyvae import VAE
from numpyvae.speed import fused
vae = VAE(30, 4, hidden=(16,), seed=1, dtype=np.float32)
assert fused.attach(vae)
opt = fused.FusedAdam(1e-2)
x = (np.random.default_rng(2).random((10, 30)) < 0.3).astype(np.float32)
eps = np.random.default_rng(3).standard_normal((1, 10, 4)).astype(np.float32)
for _ in range(2):
    loss = vae.forward(x, eps=eps).loss
    vae.backward()
    opt.step(vae.flat_params, vae.flat_grads)
"""


@needs_pycc
def test_a_second_process_loads_the_module_from_the_cache_without_numba():
    """A new process finds the module built (here, by this one) and never imports numba,
    through warm-up and two fused training steps; its numbers are this process's."""
    _compiled()
    root = fused_aot.cache_root()
    before = sorted(p.name for p in root.iterdir())
    code = "import json, sys\nfrom numpyvae.speed import fused\nseconds = fused.warm_up()\n" + _TWO_STEPS + r"""
print(json.dumps(dict(seconds=seconds, source=fused.source, loss=loss,
                      params=vae.flat_params[:8].tolist(), t=opt.t,
                      numba="numba" in sys.modules, llvmlite="llvmlite" in sys.modules,
                      metadata="importlib.metadata" in sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    child = json.loads(done.stdout)
    assert child["source"] == "cache" and child["seconds"] > 0 and child["t"] == 2
    assert not child["numba"] and not child["llvmlite"]
    assert not child["metadata"]           # the cache key's versions come from the folder names
    assert sorted(p.name for p in root.iterdir()) == before        # nothing built
    here = {}
    exec(_TWO_STEPS, here)                  # the same two steps here: the same numbers, bit for bit
    assert child["loss"] == here["loss"] and child["params"] == here["vae"].flat_params[:8].tolist()


@needs_numba
def test_the_cache_key_changes_with_what_the_code_depends_on(monkeypatch):
    key = fused_aot.cache_key()
    assert fused_aot.cache_key() == key                           # the same inputs, the same name
    real_source, real_cpu = fused_aot._source_text(), fused_aot._cpu()
    monkeypatch.setattr(fused_aot, "_source_text", lambda: real_source + "# a kernel edited\n")
    assert fused_aot.cache_key() != key
    monkeypatch.setattr(fused_aot, "_source_text", lambda: real_source)
    monkeypatch.setattr(fused_aot, "_cpu", lambda: real_cpu.replace("avx", "sse", 1) + " other")
    assert fused_aot.cache_key() != key
    monkeypatch.setattr(fused_aot, "_cpu", lambda: real_cpu)
    assert fused_aot.cache_key() == key
    parts = fused_aot.key_parts()
    for name in ("numba", "numpy", "python", "abi", "machine"):
        assert fused_aot.cache_key(dict(parts, **{name: parts[name] + "x"})) != key, name


def test_versions_are_read_from_the_dist_info_folders(monkeypatch, tmp_path):
    """``_version`` reads what ``importlib.metadata`` would, from the folder names pip writes."""
    import importlib.metadata
    import importlib.util
    for name in ("numpy", "numba", "llvmlite"):
        if importlib.util.find_spec(name) is not None:
            assert fused_aot._version(name) == importlib.metadata.version(name)
    site = tmp_path / "site"
    (site / "fakepkg").mkdir(parents=True)
    (site / "fakepkg" / "__init__.py").write_text("")
    (site / "fakepkg-1.2.3.dist-info").mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert fused_aot._version("fakepkg") == "1.2.3"
    (site / "fakepkg-1.10.0.dist-info").mkdir()            # a stale folder left beside it
    assert fused_aot._version("fakepkg") == "1.10.0+1.2.3"
    with pytest.raises(ModuleNotFoundError):
        fused_aot._version("no_such_package_here")


def test_the_cache_folder_is_chosen_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMPYVAE_CACHE_DIR", str(tmp_path / "c"))
    assert fused_aot.cache_root() == tmp_path / "c"
    monkeypatch.delenv("NUMPYVAE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fused_aot.cache_root() == tmp_path / "xdg" / "numpyvae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fused_aot.cache_root() == tmp_path / "home" / ".cache" / "numpyvae"


def _after_the_compiling_line(err):
    """The lines after the one that says a build starts (a build always says so first)."""
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("numpyvae: compiling the fused kernels for this machine, once"), lines
    return lines[1:]


@needs_pycc
def test_a_failed_build_falls_back_to_numba_in_process_with_the_same_numbers(monkeypatch, capsys, tmp_path):
    _compiled()
    want = {dt: _kernel_results(dt) for dt in DTYPES}

    def no_compiler(outdir):
        (outdir / "half-written.so").write_bytes(b"\0")
        raise fused_aot.BuildError("simulated: no C compiler")
    monkeypatch.setattr(fused_aot, "_build", no_compiler)
    _reset(monkeypatch, tmp_path / "cache")
    capsys.readouterr()
    assert fused.available() and fused.source == "in process"
    err = _after_the_compiling_line(capsys.readouterr().err)
    assert len(err) == 1 and "ahead-of-time build failed" in err[0] and "no C compiler" in err[0], err
    assert list((tmp_path / "cache").iterdir()) == []              # nothing half-built left
    assert not isinstance(fused._load(), fused_aot.Kernels)
    for dt in DTYPES:
        for a, b in zip(_kernel_results(dt), want[dt]):
            np.testing.assert_array_equal(a, b)
    assert capsys.readouterr().err == ""


@needs_numba
def test_without_the_ahead_of_time_compiler_numba_compiles_in_process(monkeypatch, capsys, tmp_path):
    """numba.pycc is deprecated in numba: without it, the kernels are compiled here, with a line."""
    monkeypatch.setattr(fused_aot, "_has_pycc", lambda: False)
    _reset(monkeypatch, tmp_path / "cache")
    capsys.readouterr()
    assert fused.available() and fused.source == "in process"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "numba.pycc" in err[0] and "compiled in this process" in err[0], err
    assert not (tmp_path / "cache").exists()                       # nothing built
    x, logits = _inputs()[:2]
    assert fused.bernoulli_log_prob_and_grad(x, logits)[0].shape == (2, 4)
    assert capsys.readouterr().err == ""


def _copy_builder(calls):
    """A stand-in for the compiler: copies the session's module (the build itself is tested by
    the session's first load)."""
    made = _compiled().path

    def build(outdir):
        calls.append(outdir)
        shutil.copy(made, outdir / made.name)
    return build


@needs_pycc
def test_an_unwritable_cache_folder_builds_for_this_process_only(monkeypatch, capsys, tmp_path):
    calls = []
    monkeypatch.setattr(fused_aot, "_build", _copy_builder(calls))
    want = _kernel_results(np.float32)
    (tmp_path / "a-file").write_text("not a folder")
    _reset(monkeypatch, tmp_path / "a-file" / "cache")
    capsys.readouterr()
    assert fused.available() and fused.source == "built" and len(calls) == 1
    err = _after_the_compiling_line(capsys.readouterr().err)
    assert len(err) == 1 and "cannot write the kernel cache" in err[0], err
    k = fused._load()
    assert tmp_path not in k.path.parents
    assert (tmp_path / "a-file").read_text() == "not a folder"
    for a, b in zip(_kernel_results(np.float32), want):
        np.testing.assert_array_equal(a, b)
    assert capsys.readouterr().err == ""


@needs_pycc
def test_a_build_that_loses_the_race_uses_the_winners_module(monkeypatch, tmp_path):
    """Two processes building at once: the second rename fails, and the second process loads
    the first one's whole module and removes its own folder."""
    calls = []
    copy = _copy_builder(calls)
    final = tmp_path / fused_aot.cache_key()

    def race(outdir):
        copy(outdir)
        final.mkdir()                                   # the other process finishes first
        copy(final)
    monkeypatch.setattr(fused_aot, "_build", race)
    monkeypatch.setenv("NUMPYVAE_CACHE_DIR", str(tmp_path))
    path, built = fused_aot.find_or_build()
    assert built and path.parent == final and [p.name for p in tmp_path.iterdir()] == [final.name]
    path2, built2 = fused_aot.find_or_build()           # from now on: found, not built
    assert path2 == path and not built2 and len(calls) == 2


@needs_pycc
@pytest.mark.parametrize("bad", ["dtype", "order", "axes", "length", "read-only output", "count"])
def test_the_compiled_module_refuses_arguments_its_signature_does_not_describe(bad):
    """The compiled functions would read any memory they are handed; the checks in front of
    them raise first, and nothing is written."""
    k = _compiled()
    rng = np.random.default_rng(0)
    dy, y = rng.standard_normal((2, 4, 6)).astype(np.float32)
    dx, db = np.zeros((4, 6), np.float32), np.zeros(6, np.float32)
    args = [dy, y, dx, db]
    if bad == "dtype":
        args[1] = y.astype(np.float64)
    elif bad == "order":
        args[1] = np.asfortranarray(y)
    elif bad == "axes":
        args[1] = y[None]
    elif bad == "length":
        args[3] = np.zeros(5, np.float32)
    elif bad == "read-only output":
        args[2] = dx.copy()
        args[2].flags.writeable = False
    else:
        args = args[:3]
    with pytest.raises(TypeError):
        k.relu_back(*args)
    assert not dx.any() and not db.any()
    y.flags.writeable = False                           # inputs may be read-only
    k.relu_back(dy, y, dx, db)                          # the right arguments run
    np.testing.assert_array_equal(dx, dy * (y > 0))
