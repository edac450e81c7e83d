"""One seed, independent named streams (numpyvae._rng), and models that copy as themselves."""
import numpy as np

import numpyvae as nv
from numpyvae import _rng
from numpyvae.training.trainer import _seed_streams


def test_every_named_stream_gives_different_bits():
    draws = {name: _rng.generator(7, name).integers(0, 2**63, size=8) for name in _rng.STREAMS}
    firsts = [tuple(d) for d in draws.values()]
    assert len(set(firsts)) == len(firsts)


def test_model_and_trainer_draw_from_disjoint_streams():
    # the trainer's shuffle stream must not replay the bits of the model's weights
    seed = 3
    init_bits = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0]).random(16)
    trainer = _seed_streams(seed)
    model_init = _rng.streams(seed)["init"]
    for name in ("batch", "binarize", "val_eps", "val_binarize"):
        assert trainer[name].spawn_key != model_init.spawn_key
        assert not np.allclose(np.random.default_rng(trainer[name]).random(16),
                               np.random.default_rng(model_init).random(16))
    # and the model's weights come from the "init" stream, reproducibly
    a, b = nv.VAE(6, 2, hidden=(4,), seed=seed), nv.VAE(6, 2, hidden=(4,), seed=seed)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert init_bits.shape == (16,)


def test_streams_are_stable_when_a_name_is_appended():
    # the order of STREAMS is the contract: stream i is child i of SeedSequence(seed)
    kids = np.random.SeedSequence(11).spawn(len(_rng.STREAMS))
    for i, name in enumerate(_rng.STREAMS):
        assert _rng.streams(11)[name].spawn_key == kids[i].spawn_key


class StudentVAE(nv.VAE):
    def backward(self):
        self.flat_grads[...] = 0.0


def test_copy_keeps_the_subclass_so_gradcheck_checks_the_subclass():
    vae = StudentVAE(6, 2, hidden=(4,), seed=0)
    assert type(vae.copy()) is StudentVAE
    assert type(vae.astype(np.float32)) is StudentVAE
    x = np.random.default_rng(0).random((3, 6))
    eps = np.random.default_rng(1).standard_normal((1, 3, 2))
    report = nv.gradcheck.check_model(vae, x, eps=eps)
    assert not report.passed        # the zero backward is caught, not the reference's
