"""Train the models that ship with the package (numpyvae/shipped/) and write what they reach.

    python scripts/make_shipped_models.py --force    # retrain both, replace the shipped files
    python scripts/make_shipped_models.py --check    # retrain in a temporary folder, compare

Each model is trained by ``numpyvae train`` (the command is printed and recorded) on the
packaged MNIST digits with seed 0 and one BLAS thread, so a rerun on the same machine with the
same NumPy and BLAS gives the same parameters bit for bit (the trainer's promise; another BLAS
or CPU may differ in the last bits). The run's checkpoint is then written again without the
optimizer state (a third of the size: the shipped files are for looking and evaluating, not
for resuming), with ``extra["shipped"]`` recording the command, the validation -ELBO and a
SHA-256 of the parameters. ``numpyvae/shipped/README.md`` is written from the same record.
``--check`` retrains into a temporary folder and compares the parameters with the shipped
ones (exit 1 when any bit differs); nothing in numpyvae/shipped/ is touched.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's numpyvae

from numpyvae.training import checkpoint, pretrained  # noqa: E402
from numpyvae.training.trainer import read_history  # noqa: E402

#: name -> the options of ``numpyvae train`` beyond COMMON (the defaults are 784-400-20)
MODELS = {"mnist-2d": ["--z-dim", "2"], "mnist-20d": []}
COMMON = ["--dataset", "mnist-embedded", "--epochs", "30", "--seed", "0", "--threads", "1"]


def train_command(name: str, out: str) -> list[str]:
    """The ``numpyvae train`` arguments that train the shipped model ``name`` into ``out``."""
    return ["train", *MODELS[name], *COMMON, "--out", out]


def params_sha256(params: dict) -> str:
    """SHA-256 over the parameters (names sorted, dtype and bytes): the same for equal weights."""
    h = hashlib.sha256()
    for k in sorted(params):
        a = np.ascontiguousarray(params[k])
        h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


def train(name: str, workdir: str) -> checkpoint.Checkpoint:
    out = os.path.join(workdir, name)
    args = train_command(name, out)
    print("numpyvae " + " ".join(args[:-2]), flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "numpyvae", *args, "--no-progress"], env=env, cwd=workdir,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"make_shipped_models: training {name} failed:\n{r.stderr[-2000:]}")
    return checkpoint.load(os.path.join(out, "checkpoint.npz"))


def ship(name: str, run: checkpoint.Checkpoint) -> dict:
    """Write the run's model to numpyvae/shipped/<name>.npz without its optimizer state."""
    vae = run.build_model()
    h = read_history(os.path.join(os.path.dirname(run.path), "history.csv"))
    record = {
        "name": name,
        "command": "numpyvae " + " ".join(train_command(name, "DIR")[:-2]),
        "description": pretrained.SHIPPED[name],
        "epochs": run.epoch, "steps": run.step,
        "val_neg_elbo": round(float(h["val_neg_elbo"][-1]), 4),
        "val_recon": round(float(h["val_recon"][-1]), 4),
        "val_kl": round(float(h["val_kl"][-1]), 4),
        "params_sha256": params_sha256(run.params),
        "numpy": np.__version__,
    }
    state = {"train_config": run.train_config, "epoch": run.epoch, "step": run.step,
             "optimizer": run.optimizer, "extra": {**run.extra, "shipped": record},
             "rngs": {k: v for k, v in run.rng_states.items() if k != "vae"}}
    checkpoint.save(pretrained.shipped_path(name), vae, None, state)
    return record


def write_readme(records: list[dict]) -> None:
    lines = ["# The shipped models", "",
             "Written by `python scripts/make_shipped_models.py --force` (do not edit by hand). "
             "Each file is a numpyvae checkpoint without optimizer state: "
             "`numpyvae.load_model(\"NAME\")` returns the model, "
             "`numpyvae evaluate NAME` evaluates it. Trained on the packaged MNIST digits "
             "(`mnist-embedded`: 9000 training / 1000 validation images, dynamic binarisation), "
             "seed 0, one BLAS thread; `--check` retrains and compares the parameters bit for bit.", "",
             "| name | model | command | epochs | validation -ELBO (nats) | recon + KL | size |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        size = os.path.getsize(pretrained.shipped_path(r["name"]))
        lines.append(f"| `{r['name']}` | {r['description']} | `{r['command']}` | {r['epochs']} | "
                     f"{r['val_neg_elbo']:.2f} | {r['val_recon']:.2f} + {r['val_kl']:.2f} | "
                     f"{size / 1e6:.1f} MB |")
    lines += ["", "SHA-256 of the parameters (names sorted; dtype, shape and bytes), with NumPy "
              f"{records[0]['numpy']}:", ""]
    lines += [f"- `{r['name']}`: `{r['params_sha256']}`" for r in records]
    (pretrained.SHIPPED_DIR / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--force", action="store_true", help="retrain and replace the shipped files")
    g.add_argument("--check", action="store_true", help="retrain in a temporary folder and compare")
    p.add_argument("--only", choices=sorted(MODELS), action="append",
                   help="only this model (repeatable; default: all)")
    a = p.parse_args(argv)
    names = a.only or list(MODELS)
    different = []
    with tempfile.TemporaryDirectory() as work:
        records = []
        for name in names:
            run = train(name, work)
            if a.check:
                shipped = checkpoint.load(pretrained.shipped_path(name))
                same = params_sha256(run.params) == params_sha256(shipped.params)
                print(f"{name}: {'identical parameters' if same else 'DIFFERENT parameters'}")
                if not same:
                    different.append(name)
            else:
                records.append(ship(name, run))
                print(f"{name}: validation -ELBO {records[-1]['val_neg_elbo']:.2f} nats -> "
                      f"{pretrained.shipped_path(name)}")
    if a.force:
        if set(names) != set(MODELS):  # keep the other models' rows
            records += [checkpoint.load(pretrained.shipped_path(n)).extra["shipped"]
                        for n in MODELS if n not in names]
            records.sort(key=lambda r: list(MODELS).index(r["name"]))
        write_readme(records)
    return 1 if different else 0


if __name__ == "__main__":
    raise SystemExit(main())
