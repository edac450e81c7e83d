"""Optimizers: update rules against hand computations, convergence, state round-trips."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyvae as nv
from numpyvae import optim
from numpyvae.speed.adam import BlockedAdam

P0 = np.array([1.0, -2.0, 0.5])
GRADS = [np.array([0.5, -1.0, 0.0]), np.array([0.2, 0.3, -4.0]), np.array([-1.0, 0.1, 2.0])]


def _run(opt, steps=3, p0=P0):
    p = p0.copy()
    out = []
    for g in GRADS[:steps]:
        opt.step(p, g.copy())
        out.append(p.copy())
    return out


def test_sgd_by_hand():
    got = _run(optim.SGD(lr=0.1))
    p = P0.copy()
    for g, q in zip(GRADS, got):
        p = p - 0.1 * g
        np.testing.assert_allclose(q, p, rtol=0, atol=1e-15)


def test_momentum_by_hand():
    got = _run(optim.SGD(lr=0.1, momentum=0.9))
    p = P0.copy()
    v1 = GRADS[0]
    p1 = p - 0.1 * v1
    v2 = 0.9 * v1 + GRADS[1]
    p2 = p1 - 0.1 * v2
    v3 = 0.9 * v2 + GRADS[2]
    p3 = p2 - 0.1 * v3
    for q, ref in zip(got, (p1, p2, p3)):
        np.testing.assert_allclose(q, ref, rtol=1e-14, atol=1e-15)


def test_weight_decay_by_hand():
    wd = 0.3
    got = _run(optim.SGD(lr=0.1, momentum=0.5, weight_decay=wd))
    p, v = P0.copy(), np.zeros(3)
    for g, q in zip(GRADS, got):
        v = 0.5 * v + (g + wd * p)          # the decay uses the parameters before the step
        p = p - 0.1 * v
        np.testing.assert_allclose(q, p, rtol=1e-14, atol=1e-15)
    # Adam with weight decay: L2 added to the gradient before the moments
    got = _run(optim.Adam(lr=0.01, weight_decay=wd))
    p, m, s = P0.copy(), np.zeros(3), np.zeros(3)
    for t, (g, q) in enumerate(zip(GRADS, got), 1):
        g = g + wd * p
        m = 0.9 * m + 0.1 * g
        s = 0.999 * s + 0.001 * g * g
        p = p - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(s / (1 - 0.999 ** t)) + 1e-8)
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-14)


def test_adagrad_by_hand():
    got = _run(optim.Adagrad(lr=0.5, eps=1e-3))
    p, G = P0.copy(), np.zeros(3)
    for g, q in zip(GRADS, got):
        G = G + g * g
        p = p - 0.5 * g / (np.sqrt(G) + 1e-3)
        np.testing.assert_allclose(q, p, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("eps", [1e-8, 0.1])
def test_adam_by_hand_with_bias_correction(eps):
    b1, b2, lr = 0.8, 0.95, 0.01
    got = _run(optim.Adam(lr=lr, betas=(b1, b2), eps=eps))
    p, m, v = P0.copy(), np.zeros(3), np.zeros(3)
    for t, (g, q) in enumerate(zip(GRADS, got), 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)      # eps outside the bias-corrected sqrt
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [optim.Adam, BlockedAdam])
def test_adam_keeps_kingma_and_ba_moments(make):
    """The state is the paper's m and v (both forms of the update keep the same state)."""
    b1, b2 = 0.8, 0.95
    opt = make(lr=0.01, betas=(b1, b2))
    _run(opt)
    m, v = np.zeros(3), np.zeros(3)
    for g in GRADS:
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    np.testing.assert_allclose(opt.m, m, rtol=1e-13)
    np.testing.assert_allclose(opt.v, v, rtol=1e-13)
    assert optim.Adam().m is None and optim.Adam().v is None
    assert set(opt.state_dict()) == {"t", "m", "v"}


def test_adam_first_step_is_lr_times_sign():
    """Bias correction makes the first step ~lr in every coordinate with g != 0."""
    p = P0.copy()
    g = np.array([1e-3, -50.0, 0.0])
    optim.Adam(lr=0.01).step(p, g)
    np.testing.assert_allclose(p - P0, [-0.01, 0.01, 0.0], rtol=1e-4, atol=0)


@pytest.mark.parametrize("name, lr, steps", [("sgd", 0.1, 500), ("momentum", 0.05, 500),
                                              ("adagrad", 0.5, 3000), ("adam", 0.05, 3000)])
def test_minimises_convex_quadratic(name, lr, steps):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    A = A @ A.T / 5 + 0.5 * np.eye(5)                # SPD, eigenvalues in ~[0.5, 3]
    c = rng.standard_normal(5)

    def f(p):
        return 0.5 * (p - c) @ A @ (p - c)

    p = np.zeros(5)
    f0 = f(p)
    opt = optim.make_optimizer(name, lr)
    for _ in range(steps):
        opt.step(p, A @ (p - c))
    assert f(p) < 1e-3 * f0, (name, f(p), f0)
    assert np.linalg.norm(p - c) < 0.05


@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1), lambda: optim.SGD(0.1, momentum=0.9),
                                  lambda: optim.Adagrad(0.1), lambda: optim.Adam(0.01),
                                  lambda: optim.Adam(0.01, weight_decay=0.1)])
def test_state_dict_round_trip(make):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(4) for _ in range(6)]
    a = make()
    p = rng.standard_normal(4)
    for g in grads[:3]:
        a.step(p, g)
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values()) and int(state["t"]) == 3
    p_saved = p.copy()
    for g in grads[3:]:
        a.step(p, g)
    b = make()
    b.load_state_dict({k: v.copy() for k, v in state.items()})
    q = p_saved.copy()
    for g in grads[3:]:
        b.step(q, g)
    np.testing.assert_array_equal(q, p)
    # a fresh optimizer would NOT reproduce the steps (when it keeps state at all)
    if len(state) > 1:
        c, r = make(), p_saved.copy()
        for g in grads[3:]:
            c.step(r, g)
        assert not np.array_equal(r, p)
    # state_dict returns copies
    st = a.state_dict()
    for k in st:
        if k != "t":
            st[k][...] = 1e9
    assert not any(np.any(v == 1e9) for k, v in a.state_dict().items())
    # into=: the same values, written into an earlier state_dict's arrays, still copies
    old = a.state_dict()
    a.step(p, grads[0])
    again = a.state_dict(into=old)
    fresh = a.state_dict()
    assert set(again) == set(fresh)
    for k in fresh:
        np.testing.assert_array_equal(again[k], fresh[k])
        if k != "t":
            assert again[k] is old[k] and not np.shares_memory(again[k], getattr(a, k))
    # arrays that do not fit (another shape or dtype) are replaced, not written into
    if len(fresh) > 1:
        k = next(k for k in fresh if k != "t")
        odd = {k: np.zeros(5), "t": old["t"]}
        assert a.state_dict(into=odd)[k] is not odd[k] and not odd[k].any()


def test_make_optimizer_names():
    assert type(optim.make_optimizer("sgd", 0.1)) is optim.SGD
    m = optim.make_optimizer("momentum", 0.1)
    assert type(m) is optim.SGD and m.momentum == 0.9
    assert optim.make_optimizer("momentum", 0.1, momentum=0.5).momentum == 0.5
    assert type(optim.make_optimizer("adagrad", 0.1)) is optim.Adagrad
    a = optim.make_optimizer("adam", 0.002, betas=(0.5, 0.9))
    assert type(a) is optim.Adam and a.lr == 0.002 and (a.b1, a.b2) == (0.5, 0.9)
    assert nv.make_optimizer is optim.make_optimizer
    with pytest.raises(ValueError, match="optimizer"):
        optim.make_optimizer("rmsprop", 0.1)


@pytest.mark.parametrize("lr", [0.0, -0.1, np.nan, np.inf])
@pytest.mark.parametrize("cls", [optim.SGD, optim.Adagrad, optim.Adam])
def test_bad_lr(cls, lr):
    with pytest.raises(ValueError, match="lr"):
        cls(lr=lr)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(0.1, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="weight_decay"):
        optim.Adagrad(0.1, weight_decay=-1)
    with pytest.raises(ValueError, match="params"):
        optim.SGD(0.1).step(np.zeros(3), np.zeros(4))


def test_step_updates_vae_params_in_place():
    vae = nv.VAE(6, 2, hidden=(4,), seed=0)
    x = np.random.default_rng(0).uniform(size=(5, 6))
    W = vae.params["dec.out.W"]
    before = W.copy()
    vae.loss_and_grads(x)
    optim.Adam(0.01).step(vae.flat_params, vae.flat_grads)
    assert vae.params["dec.out.W"] is W and not np.array_equal(W, before)


# ------------------------------------------------ state bound to one parameter array (issue 8)
@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.9), lambda: optim.Adagrad(0.1),
                                  lambda: optim.Adam(0.01), lambda: BlockedAdam(0.01),
                                  lambda: optim.SGD(0.1)])
def test_state_refuses_a_second_array_of_the_same_shape(make):
    """One optimizer, two arrays: their moments would mix. Refused, naming the argument."""
    opt = make()
    a, b = P0.copy(), P0.copy() + 1.0
    opt.step(a, GRADS[0].copy())
    b_before = b.copy()
    with pytest.raises(ValueError, match="params.*another parameter array"):
        opt.step(b, GRADS[1].copy())
    np.testing.assert_array_equal(b, b_before)          # refused before touching b
    assert opt.t == 1
    opt.step(a, GRADS[1].copy())                          # the bound array still works
    opt.step(a[:], GRADS[2].copy())                       # so does a view of all of it
    assert opt.t == 3


def test_two_optimizers_for_two_arrays_match_separate_runs():
    """Binding per parameter: each optimizer's updates equal a run on that array alone."""
    a, b = P0.copy(), -P0.copy()
    oa, ob = optim.Adam(0.05), optim.Adam(0.05)
    for g in GRADS:
        oa.step(a, g.copy())
        ob.step(b, -2 * g)
    ref_a, ref_b = P0.copy(), -P0.copy()
    ra, rb = optim.Adam(0.05), optim.Adam(0.05)
    for g in GRADS:
        ra.step(ref_a, g.copy())
    for g in GRADS:
        rb.step(ref_b, -2 * g)
    np.testing.assert_array_equal(a, ref_a)
    np.testing.assert_array_equal(b, ref_b)


def test_restored_state_binds_to_the_new_model_and_checks_its_shape():
    opt = optim.Adam(0.01)
    p = P0.copy()
    opt.step(p, GRADS[0].copy())
    state = opt.state_dict()
    new = optim.Adam(0.01)
    new.load_state_dict(state)
    q = p.copy()                                           # e.g. a model rebuilt from a checkpoint
    new.step(q, GRADS[1].copy())
    with pytest.raises(ValueError, match="params.*another parameter array"):
        new.step(p, GRADS[1].copy())
    wrong = optim.Adam(0.01)
    wrong.load_state_dict(state)
    with pytest.raises(ValueError, match=r"params has shape \(4,\).*'m' has shape \(3,\)"):
        wrong.step(np.zeros(4), np.zeros(4))


def test_adam_blocked_path_is_the_formula():
    """The speed layer's blocked update matches the hand computation too."""
    b1, b2, lr, eps = 0.8, 0.95, 0.01, 1e-8
    got = _run(BlockedAdam(lr=lr, betas=(b1, b2), eps=eps))
    p, m, v = P0.copy(), np.zeros(3), np.zeros(3)
    for t, (g, q) in enumerate(zip(GRADS, got), 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------- moments that decay towards the subnormals
@given(decay=st.floats(0.01, 0.9999))
def test_flush_period_keeps_a_decaying_entry_above_the_subnormals(decay):
    n = optim._flush_period(decay)
    for dtype in (np.float32, np.float64):
        # an entry just above the flush threshold, decaying for a whole period, is still normal
        assert optim._tiny(dtype) * decay ** n >= np.finfo(dtype).tiny
    assert decay ** (n + 1) < 2.0 ** -24 * (1 + 1e-9)     # and the period is no shorter than it must be


@pytest.mark.parametrize("make", [optim.Adam, BlockedAdam])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_moments_of_a_silent_parameter_never_turn_subnormal(make, dtype):
    """A parameter whose gradient is exactly zero after a while (a blank pixel, a dead unit):
    without the flush its m falls through the subnormal range, where arithmetic is slow."""
    tiny = np.finfo(dtype).tiny
    p, opt = np.ones(4, dtype=dtype), make(1e-3)
    g = np.array([1e-3, 0.0, 1e-3, 1e-3], dtype=dtype)
    saw_small = False
    for t in range(8000):
        opt.step(p, g if t < 5 else g * np.array([0, 0, 1, 1], dtype=dtype))
        m = opt.m[0]
        assert m == 0 or abs(m) >= tiny, f"step {t + 1}: m = {m!r} is subnormal"
        saw_small |= 0 < abs(m) < tiny * 2 ** 30
    assert saw_small and opt.m[0] == 0          # it got near the range, then was set to zero
    assert opt.m[2] != 0 and opt.v[0] > 0       # a live entry is untouched; v decays slowly


def test_momentum_of_a_silent_parameter_never_turns_subnormal():
    p, opt = np.ones(2, dtype=np.float32), optim.SGD(1e-2, momentum=0.9)
    tiny = np.finfo(np.float32).tiny
    for t in range(2000):
        opt.step(p, np.array([1.0 if t == 0 else 0.0, 1.0], dtype=np.float32))
        assert opt.v[0] == 0 or abs(opt.v[0]) >= tiny
    assert opt.v[0] == 0 and opt.v[1] > 1


def test_adam_with_eps_zero_leaves_v_alone():
    """m is zeroed at step 24; v = 0.9^t would fall below the threshold by step 768: zeroed
    too, it would make the update 0 / 0."""
    p, opt = np.ones(1, dtype=np.float32), optim.Adam(1e-3, eps=0.0, betas=(0.5, 0.9))
    for t in range(800):
        opt.step(p, np.array([1.0 if t == 0 else 0.0], dtype=np.float32))
    assert opt.m[0] == 0 and 0 < opt.v[0] < optim._tiny(np.float32) and np.isfinite(p).all()
