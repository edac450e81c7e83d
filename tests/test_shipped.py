"""The trained models that ship with the package, and ``numpyvae.load_model``.

The shipped files are written by ``scripts/make_shipped_models.py``; these tests check that
they load in one line, reach the number their record claims, agree with the README written
beside them, and that ``import numpyvae`` still loads no wing to offer ``load_model``.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.data import load_dataset
from numpyvae.training import checkpoint, pretrained
from numpyvae.training.trainer import evaluate

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("make_shipped_models", ROOT / "scripts" / "make_shipped_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_import_numpyvae_loads_no_checkpoint_reader():
    code = ("import sys, numpyvae; assert callable(numpyvae.load_model); "
            "print(sorted(m for m in sys.modules if m.startswith('numpyvae.training')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("name, z_dim", [("mnist-2d", 2), ("mnist-20d", 20)])
def test_a_shipped_model_loads_in_one_line_and_reaches_its_recorded_number(name, z_dim):
    vae = nv.load_model(name)
    assert isinstance(vae, nv.VAE)
    assert (vae.config["x_dim"], vae.config["z_dim"], vae.config["hidden"]) == (784, z_dim, [400])
    c = checkpoint.load(pretrained.shipped_path(name))
    rec = c.extra["shipped"]
    assert c.opt_state is None  # the model only: a third of a training checkpoint
    # the recorded validation -ELBO is the trainer's own validation number, reproduced here
    ds = load_dataset("mnist-embedded", seed=int(c.extra["data_seed"]))
    res = evaluate(vae, ds.x_val, seed=int(c.train_config["seed"]), batch_size=500, binarize=True)
    assert res["n"] == 1000
    assert abs(res["neg_elbo"] - rec["val_neg_elbo"]) < 1e-3, (res, rec)
    # and the record names the command that trained it (the script's, minus --out)
    assert rec["command"] == "numpyvae " + " ".join(_script().train_command(name, "x")[:-2])


def test_the_readme_beside_the_shipped_models_matches_them():
    readme = (pretrained.SHIPPED_DIR / "README.md").read_text(encoding="utf-8")
    script = _script()
    for name in pretrained.SHIPPED:
        c = checkpoint.load(pretrained.shipped_path(name))
        rec = c.extra["shipped"]
        assert script.params_sha256(c.params) == rec["params_sha256"]
        assert f"`{name}`: `{rec['params_sha256']}`" in readme
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"`{rec['command']}`" in row and f"| {rec['val_neg_elbo']:.2f} |" in row


def test_load_model_reads_any_checkpoint_the_package_writes(tmp_path):
    vae = nv.VAE(12, 3, hidden=(5,), seed=3)
    path = checkpoint.save(tmp_path / "run" / "checkpoint.npz", vae, None)
    for where in (path, tmp_path / "run"):  # the file, and the run directory standing for it
        back = nv.load_model(where)
        assert back.config == vae.config
        for k in vae.params:
            np.testing.assert_array_equal(back.params[k], vae.params[k])


def test_load_model_on_a_bad_path_says_what_it_expected(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoint not found: .*nothere .*mnist-2d"):
        nv.load_model(tmp_path / "nothere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(checkpoint.CheckpointError, match="not a numpyvae checkpoint"):
        nv.load_model(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="name: expected one of the shipped models"):
        pretrained.shipped_path("mnist-3d")


def test_numpyvae_evaluate_accepts_a_shipped_model(tmp_path):
    r = subprocess.run([sys.executable, "-m", "numpyvae", "evaluate", "mnist-2d", "--threads", "1"],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    rec = checkpoint.load(pretrained.shipped_path("mnist-2d")).extra["shipped"]
    m = re.search(r"negative ELBO: ([\d.]+) nats", r.stdout)
    assert m and abs(float(m.group(1)) - rec["val_neg_elbo"]) < 0.01, r.stdout
    r = subprocess.run([sys.executable, "-m", "numpyvae", "evaluate", "mnist-3d"], capture_output=True,
                       text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "mnist-2d" in r.stderr, r.stderr
