"""Checkpoint files: round trip, validation errors, atomic writes, rng state serialisation."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.training import checkpoint as ck


def _small_model(seed=0, likelihood="bernoulli", dtype=np.float64):
    return nv.VAE(x_dim=12, z_dim=3, hidden=(8,), likelihood=likelihood, seed=seed, dtype=dtype)


def _trained_state(tmp_path, steps=3):
    vae = _small_model()
    opt = nv.optim.make_optimizer("adam", 1e-2)
    rng = np.random.default_rng(5)
    x = (rng.random((6, 12)) < 0.5).astype(np.float64)
    for _ in range(steps):
        vae.forward(x)
        vae.backward()
        opt.step(vae.flat_params, vae.flat_grads)
    batch_rng = np.random.default_rng(11)
    batch_rng.random(7)  # advance it: the saved state must be the current one, not the seed's
    state = {
        "train_config": {"epochs": 4, "lr": 0.01},
        "epoch": 2,
        "step": 17,
        "optimizer": {"name": "adam", "lr": 1e-2, "kwargs": {}},
        "rngs": {"batch": batch_rng},
        "extra": {"dataset": "toy"},
    }
    return vae, opt, state, batch_rng


def test_round_trip_restores_params_optimizer_and_rngs(tmp_path):
    vae, opt, state, batch_rng = _trained_state(tmp_path)
    path = tmp_path / "run" / "checkpoint.npz"
    assert ck.save(path, vae, opt, state) == str(path)
    c = ck.load(path)
    assert c.epoch == 2 and c.step == 17 and c.extra == {"dataset": "toy"}
    assert c.model_config == vae.config
    vae2 = c.build_model()
    for name, p in vae.params.items():
        assert np.array_equal(vae2.params[name], p), name
        assert vae2.params[name].dtype == p.dtype
    assert vae2.rng.bit_generator.state == vae.rng.bit_generator.state
    assert np.array_equal(vae2.rng.standard_normal(5), vae.rng.standard_normal(5))
    opt2 = c.build_optimizer()
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert set(s1) == set(s2)
    for k in s1:
        assert np.array_equal(s1[k], s2[k]), k
    assert np.array_equal(c.rng("batch").random(4), batch_rng.random(4))
    # the human-readable side file holds the same configuration
    side = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert side["format"] == ck.FORMAT and side["model_config"] == vae.config and side["epoch"] == 2


def test_parameters_are_stored_under_param_prefix_and_load_without_pickle(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    path = tmp_path / "c.npz"
    ck.save(path, vae, opt, state)
    with np.load(path, allow_pickle=False) as z:
        names = set(z.files)
        assert {f"param/{n}" for n in vae.params} <= names
        assert {f"opt/{k}" for k in opt.state_dict()} <= names
        assert {"rng/vae", "rng/batch", "meta"} <= names
        st = json.loads(str(z["rng/vae"][()]))
        assert st["bit_generator"] == type(vae.rng.bit_generator).__name__
        assert z["rng/vae"].dtype.kind == "U" and z["meta"].dtype.kind == "U"


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    for _ in range(3):
        ck.save(tmp_path / "checkpoint.npz", vae, opt, state)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "checkpoint.npz"]


def test_failed_write_keeps_the_previous_file_and_cleans_up(tmp_path):
    target = tmp_path / "f.bin"
    ck.atomic_write(target, lambda fh: fh.write(b"good"))

    def boom(fh):
        fh.write(b"half written")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        ck.atomic_write(target, boom)
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_missing_file_gives_clear_error(tmp_path):
    with pytest.raises(ck.CheckpointError, match="not found"):
        ck.load(tmp_path / "nope.npz")


def test_garbage_file_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(ck.CheckpointError, match="not a numpyvae checkpoint"):
        ck.load(p)


def test_foreign_npz_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "other.npz"
    np.savez(p, weights=np.ones(3))
    with pytest.raises(ck.CheckpointError, match="not a numpyvae checkpoint"):
        ck.load(p)
    q = tmp_path / "other2.npz"
    np.savez(q, meta=np.array(json.dumps({"format": "something-else"})))
    with pytest.raises(ck.CheckpointError, match="not a numpyvae checkpoint"):
        ck.load(q)


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    p = tmp_path / "c.npz"
    ck.save(p, vae, opt, state)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError):
        ck.load(p)


def _rewrite(path, mutate):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    mutate(arrays)
    np.savez(path, **arrays)


def test_stored_shape_mismatch_names_the_parameter(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    p = tmp_path / "c.npz"
    ck.save(p, vae, opt, state)
    _rewrite(p, lambda a: a.__setitem__("param/dec.out.W", np.zeros((3, 3))))
    with pytest.raises(ck.CheckpointError, match="dec.out.W"):
        ck.load(p)


def test_missing_parameter_is_named(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    p = tmp_path / "c.npz"
    ck.save(p, vae, opt, state)
    _rewrite(p, lambda a: a.pop("param/enc.mu.b"))
    with pytest.raises(ck.CheckpointError, match="enc.mu.b"):
        ck.load(p)


def test_config_that_disagrees_with_the_arrays_names_the_parameter(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    p = tmp_path / "c.npz"
    ck.save(p, vae, opt, state)

    def widen(a):
        meta = json.loads(str(a["meta"][()]))
        meta["model_config"]["z_dim"] = 4  # arrays were saved for z_dim = 3
        a["meta"] = np.array(json.dumps(meta))

    _rewrite(p, widen)
    c = ck.load(p)  # the file is self-consistent; the model config is not
    with pytest.raises(ck.CheckpointError, match=r"shape mismatch for parameter 'enc\.mu\.W'"):
        c.build_model()


def test_rng_state_json_round_trip_for_other_bit_generators():
    for cls in (np.random.PCG64, np.random.MT19937, np.random.Philox, np.random.SFC64):
        g = np.random.Generator(cls(3))
        g.random(10)
        restored = ck.rng_from_state(ck._from_jsonable(json.loads(json.dumps(ck._to_jsonable(ck.rng_state(g))))))
        assert np.array_equal(restored.random(5), g.random(5)), cls.__name__


def test_save_rejects_unknown_trainer_state_keys(tmp_path):
    vae = _small_model()
    with pytest.raises(ValueError, match="trainer_state"):
        ck.save(tmp_path / "c.npz", vae, None, {"bogus": 1})


def test_float32_model_round_trip(tmp_path):
    vae = _small_model(dtype=np.float32, likelihood="gaussian_learned")
    ck.save(tmp_path / "c.npz", vae, None, {})
    c = ck.load(tmp_path / "c.npz")
    assert c.opt_state is None
    vae2 = c.build_model()
    assert vae2.flat_params.dtype == np.float32
    assert np.array_equal(vae2.flat_params, vae.flat_params)


# ------------------------------------------------------------------------------ validation on load
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_parameter_is_refused_on_load(tmp_path, bad):
    vae, opt, state, _ = _trained_state(tmp_path)
    p = tmp_path / "c.npz"
    ck.save(p, vae, opt, state)

    def poison(a):
        w = a["param/enc.mu.W"].copy()
        w[1, 2] = bad
        a["param/enc.mu.W"] = w

    _rewrite(p, poison)
    with pytest.raises(ck.CheckpointError, match=r"'enc.mu.W' has 1 non-finite value"):
        ck.load(p)


def test_non_finite_optimizer_state_is_refused_on_load(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    p = tmp_path / "c.npz"
    ck.save(p, vae, opt, state)
    key = next(k for k in opt.state_dict() if np.asarray(opt.state_dict()[k]).ndim == 1)

    def poison(a):
        m = a[f"opt/{key}"].copy()
        m[0] = np.nan
        a[f"opt/{key}"] = m

    _rewrite(p, poison)
    with pytest.raises(ck.CheckpointError, match=f"optimizer state '{key}'"):
        ck.load(p)


def test_parameter_dtype_must_match_the_metadata(tmp_path):
    vae = _small_model(dtype=np.float32)
    p = tmp_path / "c.npz"
    ck.save(p, vae, None, {"optimizer": {"name": "adam", "lr": 1e-3}})
    assert json.loads((tmp_path / "c.json").read_text())["param_dtypes"]["dec.out.b"] == "float32"
    _rewrite(p, lambda a: a.__setitem__("param/dec.out.b", a["param/dec.out.b"].astype(np.int32)))
    with pytest.raises(ck.CheckpointError, match=r"'dec.out.b' is stored as int32 but the metadata says float32"):
        ck.load(p)
    _rewrite(p, lambda a: a.__setitem__("param/dec.out.b", a["param/dec.out.b"].astype(np.float64)))
    with pytest.raises(ck.CheckpointError, match="float64 but the metadata says float32"):
        ck.load(p)


@pytest.mark.parametrize("content,says", [
    (b"hello\n", "a text file (6 bytes, beginning 'hello')"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "a PNG image"),
    (b"\x00\x01\x02\xff\xfe" * 10, "50-byte binary file"),
])
def test_a_file_that_is_not_an_archive_is_named_for_what_it_is(tmp_path, content, says):
    p = tmp_path / "checkpoint.npz"
    p.write_bytes(content)
    with pytest.raises(ck.CheckpointError) as info:
        ck.load(p)
    assert says in str(info.value) and "allow_pickle" not in str(info.value)


def test_a_single_npy_array_is_named(tmp_path):
    p = tmp_path / "checkpoint.npz"
    with open(p, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(ck.CheckpointError, match=r"single NumPy array \(.npy"):
        ck.load(p)


def test_model_type_is_recorded_and_unknown_types_are_refused(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    p = tmp_path / "c.npz"
    ck.save(p, vae, opt, state)
    c = ck.load(p)
    assert c.meta["model"] == "vae" and np.array_equal(c.build_model().flat_params, vae.flat_params)

    def relabel(a):
        meta = json.loads(str(a["meta"][()]))
        meta["model"] = "flow"
        a["meta"] = np.array(json.dumps(meta))

    _rewrite(p, relabel)
    with pytest.raises(ck.CheckpointError, match="unknown model type 'flow'"):
        ck.load(p).build_model()


def test_a_model_registered_in_one_place_round_trips_through_a_checkpoint(tmp_path, monkeypatch):
    """A new kind needs only ``@register``: its config names it, the checkpoint rebuilds it."""
    from numpyvae import _registry

    monkeypatch.setattr(_registry, "MODELS", dict(_registry.MODELS))

    @_registry.register("wider-vae")
    class WiderVAE(nv.VAE):
        pass

    m = WiderVAE(6, 2, hidden=(5,), seed=3)
    assert m.config["model"] == "wider-vae"
    ck.save(tmp_path / "c.npz", m, None, {})
    back = ck.load(tmp_path / "c.npz").build_model()
    assert type(back) is WiderVAE and np.array_equal(back.flat_params, m.flat_params)
    assert type(m.copy()) is WiderVAE
    with pytest.raises(ValueError, match="registered already"):
        _registry.register("wider-vae")(nv.VQVAE)


def test_a_checkpoint_of_another_format_version_is_refused_in_one_line(tmp_path):
    vae, opt, state, _ = _trained_state(tmp_path)
    p = tmp_path / "c.npz"
    ck.save(p, vae, opt, state)

    def older(a):
        meta = json.loads(str(a["meta"][()]))
        meta["version"] = 1
        meta["history"] = {"epoch": [1, 2]}      # as version 1 carried it
        a["meta"] = np.array(json.dumps(meta))

    _rewrite(p, older)
    with pytest.raises(ck.CheckpointError) as info:
        ck.load(p)
    msg = str(info.value)
    assert "\n" not in msg and "version 1" in msg and f"version {ck.VERSION}" in msg and ck.VERSION == 2


def test_save_writes_the_arrays_without_copying_them_first(tmp_path):
    """At an epoch's end a checkpoint is written while training holds its memory: save copies
    neither the parameters nor Adam's moments (``state_dict(copy=False)``), and does not stage
    them through ``tobytes`` as np.savez does. Its peak allocation stays under a tenth of the
    largest array (Adam's m, 2.6 MB here); any copy of one would exceed it."""
    import tracemalloc
    vae = nv.VAE(x_dim=784, z_dim=20, hidden=(400,), seed=0, dtype=np.float32)
    opt = nv.optim.make_optimizer("adam", 1e-3)
    vae.forward((np.random.default_rng(0).random((8, 784)) < 0.5).astype(np.float32))
    vae.backward()
    opt.step(vae.flat_params, vae.flat_grads)
    largest = max(opt.m.nbytes, max(a.nbytes for a in vae.params.values()))
    ck.save(tmp_path / "warm.npz", vae, opt)          # imports and caches outside the measurement
    tracemalloc.start()
    try:
        ck.save(tmp_path / "c.npz", vae, opt)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < largest / 10, (peak, largest)
    back = ck.load(str(tmp_path / "c.npz"))
    assert all(np.array_equal(back.params[k], v) for k, v in vae.params.items())
    assert np.array_equal(back.opt_state["m"], opt.m) and np.array_equal(back.opt_state["v"], opt.v)


def test_the_checkpoint_archive_is_what_np_savez_writes(tmp_path):
    """``save`` writes its arrays without np.savez's staging copies; the archive is still the
    one np.savez makes of them, member for member and byte for byte, for every kind of array a
    checkpoint holds (and some it does not: Fortran order, a strided view, an empty array)."""
    import zipfile
    arrays = {"param/W": np.arange(12, dtype=np.float32).reshape(3, 4), "opt/t": np.array(7),
              "meta": np.array('{"format": "x"}'), "f": np.asfortranarray(np.ones((3, 2))),
              "view": np.arange(9.0)[::2], "empty": np.zeros((0, 5)), "b": np.array([True, False])}
    with open(tmp_path / "ours.npz", "wb") as fh:
        ck._write_npz(fh, arrays)
    with open(tmp_path / "numpy.npz", "wb") as fh:
        np.savez(fh, **arrays)
    with zipfile.ZipFile(tmp_path / "ours.npz") as a, zipfile.ZipFile(tmp_path / "numpy.npz") as b:
        assert a.namelist() == b.namelist() == [k + ".npy" for k in arrays]
        for name in a.namelist():
            assert a.read(name) == b.read(name), name
    back = np.load(tmp_path / "ours.npz", allow_pickle=False)
    assert all(np.array_equal(back[k], v) and back[k].dtype == v.dtype for k, v in arrays.items())
