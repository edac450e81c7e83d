"""Training loop: reproducibility, exact resume, warm-up schedule, divergence handling."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.training import checkpoint as ck
from numpyvae.training.trainer import (HISTORY_COLUMNS, TrainConfig, Trainer, TrainingDiverged, evaluate, read_history,
                            kl_warmup_beta, train)


def _data(n_train=120, n_val=40, d=16, seed=0):
    rng = np.random.default_rng(seed)
    # grey levels with structure: a few prototypes plus noise, clipped to [0, 1]
    protos = rng.random((4, d))
    def make(n):
        idx = rng.integers(0, 4, n)
        return np.clip(protos[idx] + 0.1 * rng.standard_normal((n, d)), 0, 1).astype(np.float32)
    return make(n_train), make(n_val)


def _vae(seed=0, dtype=np.float32, **kw):
    return nv.VAE(x_dim=16, z_dim=2, hidden=(10,), seed=seed, dtype=dtype, **kw)


def _cfg(**kw):
    base = dict(epochs=3, batch_size=32, lr=3e-3, binarize=True, progress=False, seed=7, warmup_epochs=1.5)
    base.update(kw)
    return TrainConfig(**base)


def _run(seed=7, epochs=3, **kw):
    xt, xv = _data()
    tr = Trainer(_vae(), xt, xv, _cfg(seed=seed, epochs=epochs, **kw))
    tr.fit()
    return tr


# ---------------------------------------------------------------------------------- warm-up
def test_warmup_schedule_values():
    assert kl_warmup_beta(0, 10, 2, 1.0) == 0.0
    assert kl_warmup_beta(5, 10, 2, 1.0) == 0.25
    assert kl_warmup_beta(10, 10, 2, 1.0) == 0.5
    assert kl_warmup_beta(20, 10, 2, 1.0) == 1.0
    assert kl_warmup_beta(500, 10, 2, 1.0) == 1.0
    assert kl_warmup_beta(15, 10, 2, 4.0) == 3.0  # anneals to the final beta, not to 1
    assert kl_warmup_beta(0, 10, 0, 0.7) == 0.7  # no warm-up
    assert kl_warmup_beta(3, 4, 0.5, 1.0) == 1.0  # fractional epochs: 2 steps
    betas = [kl_warmup_beta(s, 7, 3, 2.0) for s in range(40)]
    assert all(b2 >= b1 for b1, b2 in zip(betas, betas[1:]))
    with pytest.raises(ValueError):
        kl_warmup_beta(-1, 10, 1, 1.0)
    with pytest.raises(ValueError):
        kl_warmup_beta(0, 0, 1, 1.0)


def test_warmup_is_applied_per_step_in_training():
    xt, xv = _data()
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=3, warmup_epochs=2, beta=1.0))
    seen = []
    orig = tr.vae.forward

    def spy(x, eps=None, k=1, beta=1.0, kl="closed", q=None):
        seen.append(beta)
        return orig(x, eps=eps, k=k, beta=beta, kl=kl, q=q)

    tr.vae.forward = spy
    tr.fit()
    spe = tr.steps_per_epoch  # 120 / 32 -> 4
    # the training calls are interleaved with one validation call (beta = 1) per epoch
    train_only = [b for i, b in enumerate(seen) if (i + 1) % (spe + 1) != 0]
    assert train_only == [min(1.0, s / (2 * spe)) for s in range(3 * spe)]
    assert tr.history["beta"] == [train_only[spe - 1], train_only[2 * spe - 1], 1.0]
    # with beta < 1 the objective differs from the negative ELBO; afterwards they agree
    h = tr.history
    assert h["train_loss"][0] < h["train_neg_elbo"][0]


# ------------------------------------------------------------------------- reproducibility
def test_same_seed_same_history_different_seed_differs():
    a, b, c = _run(seed=7), _run(seed=7), _run(seed=8)
    assert a.history == b.history
    assert np.array_equal(a.vae.flat_params, b.vae.flat_params)
    assert a.history["train_neg_elbo"] != c.history["train_neg_elbo"]
    assert set(a.history) == set(HISTORY_COLUMNS)
    assert a.history["epoch"] == [1, 2, 3]
    assert a.history["step"] == [4, 8, 12]
    for col in HISTORY_COLUMNS:
        assert all(math.isfinite(v) for v in a.history[col]), col
    # parts add up
    for split in ("train", "val"):
        for e in range(3):
            assert math.isclose(a.history[f"{split}_neg_elbo"][e],
                                a.history[f"{split}_recon"][e] + a.history[f"{split}_kl"][e], rel_tol=1e-5)


def test_validation_elbo_is_deterministic_given_parameters():
    tr = _run(epochs=1)
    v1, v2 = tr.evaluate_val(), tr.evaluate_val()
    assert v1 == v2
    assert v1["neg_elbo"] == tr.history["val_neg_elbo"][-1]
    # the stand-alone evaluate() agrees with the trainer's validation numbers
    e = evaluate(tr.vae, tr.x_val, seed=tr.config.seed, batch_size=tr.config.val_batch_size, binarize=True)
    assert e["neg_elbo"] == v1["neg_elbo"]
    # and the validation set was binarised
    assert set(np.unique(tr.val_data)) <= {0.0, 1.0}


def test_training_reduces_the_loss():
    tr = _run(epochs=6, lr=1e-2)
    h = tr.history["val_neg_elbo"]
    assert h[-1] < h[0]


# ---------------------------------------------------------------------------- exact resume
@pytest.mark.parametrize("split_after", [1, 2])
def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path, split_after):
    xt, xv = _data()
    full = Trainer(_vae(), xt, xv, _cfg(epochs=4), checkpoint_path=tmp_path / "full.npz",
                   history_path=tmp_path / "full.csv")
    full.fit()

    part = Trainer(_vae(), xt, xv, _cfg(epochs=split_after), checkpoint_path=tmp_path / "part.npz",
                   history_path=tmp_path / "part.csv")
    part.fit()
    del part
    resumed = Trainer.resume(tmp_path / "part.npz", xt, xv, epochs=4, history_path=tmp_path / "part.csv")
    assert resumed.epoch == split_after
    resumed.fit()

    assert resumed.history == full.history
    # history.csv holds the same numbers, bit for bit (floats written with repr)
    assert (tmp_path / "part.csv").read_text() == (tmp_path / "full.csv").read_text()
    assert read_history(tmp_path / "full.csv") == full.history
    assert np.array_equal(resumed.vae.flat_params, full.vae.flat_params)
    so, sr = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    for k in so:
        assert np.array_equal(so[k], sr[k]), k
    assert resumed.vae.rng.bit_generator.state == full.vae.rng.bit_generator.state
    # both final checkpoints hold identical parameters
    a, b = ck.load(tmp_path / "full.npz"), ck.load(tmp_path / "part.npz")
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    assert a.epoch == b.epoch == 4


def test_checkpoint_is_written_every_epoch_and_loads(tmp_path):
    xt, xv = _data()
    path = tmp_path / "ck.npz"
    epochs_seen = []
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=2), checkpoint_path=path)
    tr.fit(callbacks=[lambda t, row: epochs_seen.append(ck.load(path).epoch)])
    assert epochs_seen == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["ck.json", "ck.npz"]


# ------------------------------------------------------------------------------ divergence
def test_nan_parameter_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    xt, xv = _data()
    path = tmp_path / "ck.npz"
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=1), checkpoint_path=path)
    tr.fit()
    before = path.read_bytes()
    good = tr.vae.flat_params.copy()
    tr.vae.params["dec.out.W"][0, 0] = np.nan
    with pytest.raises(TrainingDiverged) as info:
        tr.fit(2)
    msg = str(info.value)
    assert "step 4" in msg and "epoch 2" in msg
    assert "non-finite" in msg and "dec.out.W" in msg
    assert str(path) in msg
    assert info.value.step == 4 and info.value.epoch == 2 and info.value.checkpoint == str(path)
    assert path.read_bytes() == before  # untouched
    restored = ck.load(path).build_model()
    assert np.array_equal(restored.flat_params, good)
    assert np.all(np.isfinite(restored.flat_params))


def test_nan_gradient_names_the_parameter(tmp_path):
    xt, xv = _data()
    path = tmp_path / "ck.npz"
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=2), checkpoint_path=path)
    orig = tr.vae.backward
    calls = {"n": 0}

    def poisoned():
        orig()
        calls["n"] += 1
        if calls["n"] == 6:  # second step of epoch 2 (4 steps per epoch)
            tr.vae.grads["enc.logvar.b"][1] = np.inf

    tr.vae.backward = poisoned
    with pytest.raises(TrainingDiverged) as info:
        tr.fit()
    err = info.value
    assert err.parameter == "enc.logvar.b" and err.step == 5 and err.epoch == 2
    assert "'enc.logvar.b'" in str(err) and "step 5" in str(err) and "epoch 2" in str(err)
    c = ck.load(path)
    assert c.epoch == 1  # the state after epoch 1 is what remains on disk
    assert np.all(np.isfinite(c.build_model().flat_params))


def test_huge_learning_rate_diverges_with_training_diverged(tmp_path):
    xt, xv = _data()
    vae = nv.VAE(x_dim=16, z_dim=2, hidden=(10,), likelihood="gaussian", seed=0, dtype=np.float32)
    tr = Trainer(vae, xt * 100, xv * 100, _cfg(epochs=50, optimizer="sgd", lr=1e6, binarize=False),
                 checkpoint_path=tmp_path / "ck.npz")
    with pytest.raises(TrainingDiverged) as info:
        tr.fit()
    assert "step" in str(info.value)
    assert np.all(np.isfinite(ck.load(tmp_path / "ck.npz").build_model().flat_params))


def test_divergence_without_checkpoint_path_says_so():
    xt, xv = _data()
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=1))
    tr.vae.params["enc.0.b"][:] = np.nan
    with pytest.raises(TrainingDiverged, match="no checkpoint"):
        tr.fit()


# --------------------------------------------------------------------------------- misc API
def test_bad_config_and_data_are_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="kl"):
        TrainConfig(kl="exact")
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({"epochs": 1, "bogus": 2})
    xt, xv = _data()
    with pytest.raises(ValueError, match="x_train"):
        Trainer(_vae(), xt[:, :5], xv, _cfg())
    with pytest.raises(TypeError, match="x_train"):
        Trainer(_vae(), list(xt), xv, _cfg())
    with pytest.raises(TypeError, match="x_train: expected floats, bool .* uint8 .* got dtype int64"):
        Trainer(_vae(), (xt * 255).astype(np.int64), xv, _cfg())
    with pytest.raises(TypeError, match="x_val: .* got dtype uint16"):
        Trainer(_vae(), xt, (xv * 255).astype(np.uint16), _cfg())


@pytest.mark.parametrize("binarize", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compact_data_trains_exactly_as_its_float_copy(binarize, dtype):
    """uint8 grey levels are the floats scale_pixels makes of them, and bool pixels are 0/1: the
    Trainer converts a minibatch at a time, and the run (losses, validation, parameters) is the
    run on the float32 copy, to the bit."""
    xt, xv = _data()
    grey_t, grey_v = (np.round(xt * 255).astype(np.uint8), np.round(xv * 255).astype(np.uint8))
    bits_t, bits_v = xt > 0.5, xv > 0.5
    for compact_t, compact_v, floats_t, floats_v in (
            (grey_t, grey_v, nv.data.scale_pixels(grey_t), nv.data.scale_pixels(grey_v)),
            (bits_t, bits_v, bits_t.astype(np.float32), bits_v.astype(np.float32))):
        runs = []
        for a, b in ((compact_t, compact_v), (floats_t, floats_v)):
            tr = Trainer(_vae(dtype=dtype), a, b, _cfg(binarize=binarize, epochs=2))
            tr.fit()
            runs.append(tr)
        for col in ("train_loss", "val_neg_elbo"):
            assert runs[0].history[col] == runs[1].history[col]
        np.testing.assert_array_equal(runs[0].vae.flat_params, runs[1].vae.flat_params)
        np.testing.assert_array_equal(runs[0].val_data, runs[1].val_data)
        assert runs[0].val_data.dtype.kind == "f"
        for kw in ({}, {"binarize": True}):
            assert evaluate(runs[0].vae, compact_v, **kw) == evaluate(runs[0].vae, floats_v, **kw)


def test_train_function_and_no_validation_set():
    xt, _ = _data()
    tr = train(_vae(), xt, None, _cfg(epochs=1), binarize=False)
    assert tr.config.binarize is False
    assert len(tr.history["epoch"]) == 1 and math.isnan(tr.history["val_neg_elbo"][0])


def test_progress_bar_can_be_enabled(capsys):
    xt, xv = _data()
    Trainer(_vae(), xt, xv, _cfg(epochs=1, progress=True)).fit()
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "batch" in err


# ------------------------------------------------------------------ last good state, named cause
def test_divergence_returns_to_the_end_of_the_last_finished_epoch(tmp_path):
    xt, xv = _data()
    path = tmp_path / "ck.npz"
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=3), checkpoint_path=path)
    tr.fit(2)
    good = tr.vae.flat_params.copy()
    good_opt = {k: np.array(v, copy=True) for k, v in tr.optimizer.state_dict().items()}
    good_batch = tr.rngs["batch"].bit_generator.state
    orig, calls = tr.vae.backward, {"n": 0}

    def poisoned():
        orig()
        calls["n"] += 1
        if calls["n"] == 3:  # third step of epoch 3: two good updates already applied in memory
            tr.vae.grads["dec.0.W"][0, 0] = np.nan

    tr.vae.backward = poisoned
    with pytest.raises(TrainingDiverged) as info:
        tr.fit()
    assert info.value.good_epoch == 2 and info.value.quantity == "gradient"
    assert "after epoch 2" in str(info.value)
    # in memory: the epoch-2 state, not the two updates of epoch 3, not the untrained model
    assert tr.epoch == 2 and tr.step == 2 * tr.steps_per_epoch and len(tr.history["epoch"]) == 2
    assert np.array_equal(tr.vae.flat_params, good)
    assert all(np.array_equal(v, good_opt[k]) for k, v in tr.optimizer.state_dict().items())
    assert tr.rngs["batch"].bit_generator.state == good_batch
    assert np.array_equal(ck.load(path).build_model().flat_params, good)


def test_overflow_from_finite_parameters_names_the_quantity_and_the_parameter():
    xt, xv = _data()
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=1))
    tr.vae.params["enc.logvar.b"][:] = 1000.0  # finite, but exp(logvar / 2) overflows in float32
    with pytest.raises(TrainingDiverged) as info:
        tr.fit()
    err = info.value
    msg = str(err)
    assert err.quantity == "loss" and err.parameter == "enc.logvar.b"
    assert "every parameter is finite" in msg and "'enc.logvar.b'" in msg and "1e+03" in msg
    assert "sigma = exp(logvar / 2) overflowed" in msg or "the KL term" in msg
    assert "untrained model" in msg


def test_keyboard_interrupt_returns_to_the_last_good_state():
    xt, xv = _data()
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=3))
    tr.fit(1)
    good = tr.vae.flat_params.copy()
    orig, calls = tr._step, {"n": 0}

    def interrupted(xb, yb, beta, prepare=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(xb, yb, beta, prepare)

    tr._step = interrupted
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert tr.epoch == 1 and np.array_equal(tr.vae.flat_params, good) and len(tr.history["lr"]) == 1


def test_each_epochs_snapshot_reuses_the_last_ones_arrays():
    """The last-good snapshot is written into the same arrays at every epoch's end (no new
    memory each epoch), and an interruption still returns to the latest epoch's state."""
    xt, xv = _data()
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=4))
    seen = []

    def keep(trainer, row):
        seen.append({"params": trainer._good["params"], **trainer._good["opt"]})
    tr.fit(3, callbacks=[keep])
    good = {"params": tr.vae.flat_params.copy(), "m": tr.optimizer.m.copy(), "v": tr.optimizer.v.copy()}
    assert len(seen) == 3 and {"params", "m", "v"} <= set(seen[0])
    for k in good:
        assert seen[2][k] is seen[1][k] is seen[0][k] and np.array_equal(seen[2][k], good[k])
    now = seen[2]
    orig = tr._step

    def interrupted(xb, yb, beta, prepare=None):
        orig(xb, yb, beta, prepare)
        raise KeyboardInterrupt
    tr._step = interrupted
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert tr.epoch == 3 and int(tr.optimizer.t) == int(now["t"])
    for k, a in good.items():
        assert np.array_equal(tr.vae.flat_params if k == "params" else getattr(tr.optimizer, k), a)


def _state(tr):
    return {"params": tr.vae.flat_params.copy(), "m": tr.optimizer.m.copy(), "v": tr.optimizer.v.copy(),
            "t": int(tr.optimizer.t), "batch": tr.rngs["batch"].bit_generator.state,
            "vae": tr.vae.rng.bit_generator.state, "epoch": tr.epoch, "step": tr.step}


def _same_state(a, b):
    return all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a)


def _stop_at_step(tr, n, error=None):
    """Make the trainer's ``n``-th step from now raise ``error`` (Ctrl-C) after its update."""
    orig, calls = tr._step, {"n": 0}

    def stopping(xb, yb, beta, prepare=None):
        t = orig(xb, yb, beta, prepare)
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt if error is None else error
        return t
    tr._step = stopping


@pytest.mark.parametrize("stop", ["interrupt", "diverge"])
def test_with_a_checkpoint_the_last_good_state_is_read_back_from_it(tmp_path, stop):
    """With a checkpoint_path the snapshot keeps no second copy of the parameters or Adam's
    moments; a stop in the middle of an epoch returns to the last epoch's end exactly
    (parameters, moments, step count, generators) by reading that epoch's checkpoint."""
    xt, xv = _data()
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=4), checkpoint_path=tmp_path / "c.npz")
    ends = []
    tr.fit(2, callbacks=[lambda trainer, row: ends.append(_state(trainer))])
    assert tr._good["params"] is None and tr._good["opt"] is None
    error = KeyboardInterrupt() if stop == "interrupt" else TrainingDiverged(
        "made up", epoch=3, step=tr.step + 2, parameter=None, checkpoint=None, quantity="loss", good_epoch=2)
    _stop_at_step(tr, 2, error)
    with pytest.raises(type(error)):
        tr.fit()
    assert _same_state(_state(tr), ends[-1]) and len(tr.history["epoch"]) == 2
    # and training on from there is the run that never stopped
    tr.fit()
    ref = Trainer(_vae(), xt, xv, _cfg(epochs=4))
    ref.fit()
    assert np.array_equal(tr.vae.flat_params, ref.vae.flat_params)
    assert tr.history["train_loss"] == ref.history["train_loss"]


def test_a_checkpoint_changed_during_training_is_refused_not_restored(tmp_path):
    """If the file that holds the last good state is replaced during training (here by an
    older epoch's), the trainer says so instead of going back to the wrong state."""
    xt, xv = _data()
    path = tmp_path / "c.npz"
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=4), checkpoint_path=path)
    tr.fit(1)
    older = path.read_bytes()
    tr.fit(2)
    path.write_bytes(older)
    _stop_at_step(tr, 1)
    with pytest.raises(ck.CheckpointError, match="holds epoch 1.*not the last good state.*epoch 2"):
        tr.fit()


def test_a_negative_epoch_count_is_refused_before_anything_is_written(tmp_path):
    xt, xv = _data()
    tr = Trainer(_vae(), xt, xv, _cfg(), checkpoint_path=tmp_path / "c.npz")
    with pytest.raises(ValueError, match="epochs: expected a non-negative integer, got -1"):
        tr.fit(-1)
    assert list(tmp_path.iterdir()) == []


def test_fit_after_manual_steps_first_writes_the_state_it_starts_from(tmp_path):
    """Steps taken outside fit move the state away from the last checkpoint; fit writes a
    checkpoint first, so a stop in its first epoch returns to where it started, not further back."""
    xt, xv = _data()
    path = tmp_path / "c.npz"
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=3), checkpoint_path=path)
    tr.fit(1)
    for _ in range(3):
        tr.train_step(tr._minibatch(np.arange(32), np.float32))
    start = _state(tr)
    _stop_at_step(tr, 2)
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert _same_state(_state(tr), start)
    assert ck.load(str(path)).step == start["step"]


def test_resume_may_change_the_learning_rate_and_records_it(tmp_path):
    xt, xv = _data()
    path = tmp_path / "ck.npz"
    Trainer(_vae(), xt, xv, _cfg(epochs=1), checkpoint_path=path, history_path=tmp_path / "h.csv").fit()
    tr = Trainer.resume(path, xt, xv, epochs=3, lr=1e-4, history_path=tmp_path / "h.csv")
    assert tr.optimizer.lr == 1e-4 and tr.config.lr == 1e-4
    tr.fit()
    assert tr.history["lr"] == [3e-3, 1e-4, 1e-4]
    c = ck.load(path)
    assert c.train_config["lr"] == 1e-4 and read_history(tmp_path / "h.csv")["lr"] == [3e-3, 1e-4, 1e-4]


def test_every_epoch_is_checkpointed_and_a_stop_keeps_the_last_finished_one(tmp_path, monkeypatch):
    """A checkpoint before the first step and after every epoch (constant in size, so no write
    is ever skipped to save time); a run stopped in epoch 4 keeps epoch 3."""
    from numpyvae.training import trainer as trainer_mod
    save = trainer_mod._ckpt.save
    writes = []

    def counted(path, *a, **kw):
        writes.append(a[2]["epoch"])
        return save(path, *a, **kw)
    monkeypatch.setattr(trainer_mod._ckpt, "save", counted)
    xt, xv = _data()
    Trainer(_vae(), xt, xv, _cfg(epochs=5), checkpoint_path=tmp_path / "a.npz").fit()
    assert writes == [0, 1, 2, 3, 4, 5]

    def stop_at_3(t, row):
        if t.epoch == 3:
            raise KeyboardInterrupt
    writes.clear()
    with pytest.raises(KeyboardInterrupt):
        Trainer(_vae(), xt, xv, _cfg(epochs=5), checkpoint_path=tmp_path / "b.npz").fit(callbacks=[stop_at_3])
    assert ck.load(tmp_path / "b.npz").epoch == 3 and writes == [0, 1, 2, 3]

def test_labels_travel_with_their_rows_through_the_shuffle():
    """A conditional model gets each minibatch's own labels, in training and validation."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    x = np.column_stack([y / 2, rng.random((50, 4))])       # column 0 tells the label
    seen = []

    class Checking(nv.FamilyVAE):
        def forward(self, xb, **kw):
            assert np.array_equal(np.round(np.asarray(xb)[:, 0] * 2), kw["y"])
            seen.append(len(kw["y"]))
            return super().forward(xb, **kw)

    m = Checking(5, 2, hidden=(4,), likelihood="gaussian", n_classes=3, seed=0)
    tr = Trainer(m, x[:40], x[40:], TrainConfig(epochs=2, batch_size=7, progress=False),
                 y_train=y[:40], y_val=y[40:])
    tr.fit()
    assert sum(seen) == 2 * 40 + 2 * 10
    with pytest.raises(ValueError, match="y_train: this model is conditional"):
        Trainer(m, x, None)
    with pytest.raises(ValueError, match="y_train: labels are for a conditional model"):
        Trainer(nv.VAE(5, 2, hidden=(4,), likelihood="gaussian"), x, None, y_train=y)


def test_an_option_the_model_does_not_take_is_refused():
    x = np.random.default_rng(1).random((20, 6))
    with pytest.raises(ValueError, match="config.k: VQVAE takes no 'k' option"):
        Trainer(nv.VQVAE(6, hidden=(4,)), x, None, TrainConfig(k=3))
    tr = Trainer(nv.VQVAE(6, hidden=(4,), codebook_size=4), x, x[:5], TrainConfig(epochs=1, progress=False))
    h = tr.fit()
    assert set(tr.columns) - set(h) == set() and 1 <= h["val_codes_used"][0] <= 4


def test_the_checkpoint_stays_the_same_size_and_the_history_is_appended(tmp_path):
    """Each epoch appends one row to history.csv (the same file, its earlier bytes untouched)
    and rewrites a checkpoint that holds no history: its size does not grow with the epochs."""
    xt, xv = _data()
    path, hist = tmp_path / "ck.npz", tmp_path / "history.csv"
    seen = []

    def look(tr, row):
        seen.append((os.path.getsize(path), os.stat(hist).st_ino, hist.read_text()))
    Trainer(_vae(), xt, xv, _cfg(epochs=12), checkpoint_path=path, history_path=hist).fit(callbacks=[look])
    sizes = [s for s, _, _ in seen]
    # generator states and counters change their digits; a history would add ~200 bytes an epoch
    assert max(sizes) - min(sizes) <= 64
    assert len({ino for _, ino, _ in seen}) == 1
    for (_, _, before), (_, _, after) in zip(seen, seen[1:]):
        assert after.startswith(before) and after.count("\n") == before.count("\n") + 1
    assert "history" not in ck.load(path).meta


def test_resume_drops_history_rows_its_checkpoint_does_not_reach(tmp_path):
    """A crash between an epoch's history row and its checkpoint leaves one row too many: the
    resume cuts it, and the continued run matches an uninterrupted one."""
    xt, xv = _data()
    Trainer(_vae(), xt, xv, _cfg(epochs=3), history_path=tmp_path / "full.csv").fit()
    Trainer(_vae(), xt, xv, _cfg(epochs=1), checkpoint_path=tmp_path / "ck.npz",
            history_path=tmp_path / "h.csv").fit()
    full = (tmp_path / "full.csv").read_text().splitlines(keepends=True)
    (tmp_path / "h.csv").write_text("".join(full[:3]))        # the row of epoch 2, without its checkpoint
    tr = Trainer.resume(tmp_path / "ck.npz", xt, xv, epochs=3, history_path=tmp_path / "h.csv")
    assert tr.history["epoch"] == [1] and (tmp_path / "h.csv").read_text() == "".join(full[:2])
    tr.fit()
    assert (tmp_path / "h.csv").read_text() == "".join(full)
    (tmp_path / "h.csv").write_text(full[0])
    with pytest.raises(ValueError, match="0 row.*3 epochs"):
        Trainer.resume(tmp_path / "ck.npz", xt, xv, history_path=tmp_path / "h.csv")


def test_a_stop_between_an_epochs_snapshot_and_its_checkpoint_keeps_that_epoch_on_disk(tmp_path, monkeypatch):
    """Ctrl-C after epoch 2's snapshot but before its checkpoint: the trainer returns to epoch 2
    and writes epoch 2's checkpoint, so the file on disk and the state in memory agree. No
    update came after the snapshot, so the live arrays are kept and no file is read back."""
    xt, xv = _data()
    path = tmp_path / "c.npz"
    tr = Trainer(_vae(), xt, xv, _cfg(epochs=3), checkpoint_path=path)
    save, hit, reads = Trainer.save_checkpoint, [], []

    def interrupted_once(self, *a, **k):
        if self.epoch == 2 and not hit:
            hit.append(_state(self))
            raise KeyboardInterrupt
        return save(self, *a, **k)
    monkeypatch.setattr(Trainer, "save_checkpoint", interrupted_once)
    monkeypatch.setattr(ck, "load", lambda *a, **k: reads.append(a))
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert hit and not reads and tr.epoch == 2 and _same_state(_state(tr), hit[0])
    monkeypatch.undo()
    assert ck.load(str(path)).epoch == 2
