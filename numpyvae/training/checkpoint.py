"""Saving and restoring training runs as a single ``.npz`` file.

A checkpoint holds everything needed to continue a run bit for bit:

* ``param/<name>``  -- every model parameter (``vae.params``), stored with its dtype;
* ``opt/<key>``     -- the optimizer's ``state_dict()`` arrays (moments, step counter, ...);
* ``rng/<name>``    -- the ``bit_generator.state`` dicts of ``vae.rng`` (name ``vae``) and of the
  trainer's generators, each serialised as a JSON string in a 0-d unicode array;
* ``meta``          -- one JSON string (0-d unicode array) with the model config, the train config,
  the epoch/step counters, the optimizer description and the list of stored keys and shapes,
  used to validate the file when it is read back.

Nothing in it grows with the epochs: the per-epoch history lives in the run's ``history.csv``,
one row appended per epoch. A checkpoint of another format version is refused.

Next to ``run/checkpoint.npz`` a ``run/checkpoint.json`` repeats the ``meta`` document for humans.
Both files are written atomically: the bytes go to a temporary file in the same directory, are
flushed and fsync'ed, and only then renamed over the destination with ``os.replace``. A crash
while writing therefore never damages the previous checkpoint.

Files are read with ``np.load(..., allow_pickle=False)``: no Python objects are ever unpickled.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from .. import _registry
from ..optim import make_optimizer
from .rundir import remove_stale_tmp, special_file

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "Checkpoint",
    "atomic_write",
    "save",
    "load",
    "sidecar_path",
    "rng_state",
    "rng_from_state",
    "set_rng_state",
]

FORMAT = "numpyvae-checkpoint"
VERSION = 2


class CheckpointError(ValueError):
    """Raised when a checkpoint is missing, unreadable, not ours, or inconsistent.

    The message always names the file and, where relevant, the offending key or parameter.
    """


# ----------------------------------------------------------------------------------------------
# atomic file writing
# ----------------------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> str:
    """Write a file atomically and return its path as a string.

    ``write(fileobj)`` receives a binary file object opened on a temporary file created in the
    destination directory (so the final ``os.replace`` is a same-filesystem rename). After it
    returns, the data is flushed and fsync'ed and the temporary file replaces ``path``. If
    ``write`` raises, the temporary file is removed and ``path`` is left exactly as it was.
    The temporary name carries the writer's pid (``.<name>.pid<N>.<random>.tmp``), so that the
    leftovers of a killed writer are recognised and removed by the next write in the directory
    (``rundir.remove_stale_tmp``); a file whose writer is alive is never touched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_tmp(directory)
    base = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.pid{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use ordinary permissions
        os.replace(tmp, path)
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = path  # a full disk fails in write or fsync, which name no file
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # Make the rename itself durable where the platform allows opening directories.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sidecar_path(path: str | os.PathLike) -> str:
    """Return the path of the human-readable JSON file written next to checkpoint ``path``.

    ``runs/x/checkpoint.npz`` -> ``runs/x/checkpoint.json``.
    """
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    if ext.lower() != ".npz":
        root = path
    return root + ".json"


# ----------------------------------------------------------------------------------------------
# random generator state <-> JSON
# ----------------------------------------------------------------------------------------------
def _to_jsonable(obj: Any) -> Any:
    # bit_generator.state is a dict of ints/strings, except MT19937 which holds a uint32 array.
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _from_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj and "dtype" in obj and len(obj) == 2:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_jsonable(v) for v in obj]
    return obj


def rng_state(rng: np.random.Generator | Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``bit_generator.state`` dict of ``rng`` (a Generator, or already a state dict)."""
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.state
    if isinstance(rng, Mapping) and "bit_generator" in rng:
        return dict(rng)
    raise TypeError(
        f"rng: expected a numpy.random.Generator or a bit_generator state dict, got {type(rng).__name__}"
    )


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """Build a new ``np.random.Generator`` whose bit generator is in ``state``.

    ``state`` is a ``bit_generator.state`` dict such as ``rng_state`` returns; its
    ``"bit_generator"`` entry (e.g. ``"PCG64"``) selects the bit generator class.
    """
    name = state.get("bit_generator") if isinstance(state, Mapping) else None
    cls = getattr(np.random, str(name), None) if name else None
    if cls is None or not isinstance(cls, type) or not issubclass(cls, np.random.BitGenerator):
        raise CheckpointError(f"unknown bit generator in saved rng state: {name!r}")
    bg = cls()
    bg.state = dict(state)
    return np.random.Generator(bg)


def set_rng_state(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Put ``rng`` (in place) into the saved ``state``; the bit generator types must agree."""
    have = type(rng.bit_generator).__name__
    want = state.get("bit_generator")
    if have != want:
        raise CheckpointError(f"rng state is for bit generator {want!r} but the generator is {have!r}")
    rng.bit_generator.state = dict(state)


def _json_array(obj: Any) -> np.ndarray:
    # A 0-d numpy unicode array: loadable with allow_pickle=False.
    return np.array(json.dumps(_to_jsonable(obj), sort_keys=True))


# ----------------------------------------------------------------------------------------------
# save
# ----------------------------------------------------------------------------------------------
def _write_npz(fh: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez(fh, **arrays)`` (uncompressed .npz, read by ``np.load``), writing each
    contiguous numeric array's own bytes instead of a copy of them: ``np.savez`` stages every
    array through ``tobytes``, and in a training process the staged copies stay in the heap."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, a in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as f:
                if a.flags.c_contiguous and a.dtype.kind in "biuf" and a.ndim > 0:
                    npformat.write_array_header_1_0(f, npformat.header_data_from_array_1_0(a))
                    f.write(memoryview(a.reshape(-1).view(np.uint8)))
                else:
                    npformat.write_array(f, a, allow_pickle=False)


def save(path: str | os.PathLike, vae: Any, optimizer: Any, trainer_state: Mapping[str, Any] | None = None) -> str:
    """Write ``vae``, ``optimizer`` and ``trainer_state`` to the checkpoint ``path`` atomically.

    Arguments:
      path: destination ``.npz`` file (the directory is created if needed). A JSON copy of the
        configuration is written to ``sidecar_path(path)``.
      vae: a ``numpyvae.VAE`` (its ``config``, ``params`` and ``rng`` are stored).
      optimizer: an optimizer with ``state_dict()`` (or ``None`` to store no optimizer state).
      trainer_state: a JSON-able mapping with optional keys ``train_config`` (dict), ``epoch``,
        ``step`` (ints), ``optimizer`` (dict describing how to
        rebuild it, e.g. ``{"name": "adam", "lr": 1e-3, "kwargs": {}}``), ``rngs`` (name ->
        Generator or state dict; the name ``"vae"`` is reserved) and ``extra`` (free dict).

    Returns the path written, as a string.
    """
    path = os.fspath(path)
    ts = dict(trainer_state or {})
    unknown = set(ts) - {"train_config", "epoch", "step", "optimizer", "rngs", "extra"}
    if unknown:
        raise ValueError(f"trainer_state: unexpected keys {sorted(unknown)}")

    arrays: dict[str, np.ndarray] = {}
    param_shapes: dict[str, list] = {}
    param_dtypes: dict[str, str] = {}
    # no copies: the arrays are written before this returns (a copy of each would raise the
    # memory of a run at every epoch's end)
    for name, value in vae.params.items():
        a = np.asarray(value)
        arrays[f"param/{name}"] = a
        param_shapes[name] = list(a.shape)
        param_dtypes[name] = str(a.dtype)

    opt_shapes: dict[str, list] = {}
    if optimizer is not None:
        live = "copy" in inspect.signature(optimizer.state_dict).parameters    # numpyvae's optimizers
        for key, value in (optimizer.state_dict(copy=False) if live else optimizer.state_dict()).items():
            a = np.asarray(value)
            if a.dtype == object:
                raise TypeError(f"optimizer state {key!r}: object arrays cannot be stored")
            arrays[f"opt/{key}"] = a
            opt_shapes[key] = list(a.shape)

    rngs: dict[str, Any] = {"vae": rng_state(vae.rng)}
    for name, gen in dict(ts.get("rngs") or {}).items():
        if name == "vae":
            raise ValueError("trainer_state['rngs']: the name 'vae' is reserved for vae.rng")
        rngs[str(name)] = rng_state(gen)
    for name, state in rngs.items():
        arrays[f"rng/{name}"] = _json_array(state)

    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": _registry.kind_of(vae.config),
        "model_config": vae.config,
        "train_config": ts.get("train_config") or {},
        "optimizer": ts.get("optimizer"),
        "epoch": int(ts.get("epoch", 0)),
        "step": int(ts.get("step", 0)),
        "extra": ts.get("extra") or {},
        "param_shapes": param_shapes,
        "param_dtypes": param_dtypes,
        "opt_shapes": opt_shapes if optimizer is not None else None,
        "rng_names": sorted(rngs),
    }
    meta_json = json.dumps(_to_jsonable(meta), sort_keys=True)
    arrays["meta"] = np.array(meta_json)

    atomic_write(path, lambda fh: _write_npz(fh, arrays))
    human = json.dumps(_to_jsonable({k: v for k, v in meta.items()}), indent=2, sort_keys=True)
    atomic_write(sidecar_path(path), lambda fh: fh.write((human + "\n").encode("utf-8")))
    return path


# ----------------------------------------------------------------------------------------------
# load
# ----------------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """The contents of a checkpoint file, validated against its own metadata.

    Attributes: ``path``; ``meta`` (the whole JSON document); ``model_config``; ``train_config``;
    ``optimizer`` (description dict or None); ``epoch``; ``step``; ``extra``;
    ``params`` (name -> array); ``opt_state`` (key -> array, or None); ``rng_states``
    (name -> bit_generator state dict, including ``"vae"``).
    """

    path: str
    meta: dict[str, Any]
    params: dict[str, np.ndarray]
    opt_state: dict[str, np.ndarray] | None
    rng_states: dict[str, dict[str, Any]]
    model_config: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    epoch: int = 0
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def rng(self, name: str) -> np.random.Generator:
        """Return a new Generator in the saved state ``name`` (e.g. ``"vae"``, ``"batch"``)."""
        if name not in self.rng_states:
            raise CheckpointError(f"{self.path}: no rng state named {name!r} (have {sorted(self.rng_states)})")
        return rng_from_state(self.rng_states[name])

    def build_model(self) -> Any:
        """Rebuild the model of the kind ``meta["model"]`` (``numpyvae/_registry.py``): a fresh
        model from ``model_config``, then the saved parameters (shapes checked name by name)
        and the saved ``vae.rng`` state."""
        kind = str(self.meta.get("model", "vae"))
        if kind not in _registry.MODELS:
            raise CheckpointError(f"{self.path}: unknown model type {kind!r} (this numpyvae knows: "
                                  f"{', '.join(sorted(_registry.MODELS))})")
        try:
            vae = _registry.from_config({**self.model_config, "model": kind})
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{self.path}: cannot rebuild the model from its config: {exc}") from exc
        want = {k: tuple(np.shape(v)) for k, v in vae.params.items()}
        have = {k: tuple(v.shape) for k, v in self.params.items()}
        missing = sorted(set(want) - set(have))
        if missing:
            raise CheckpointError(f"{self.path}: parameter(s) missing from checkpoint: {', '.join(missing)}")
        extra = sorted(set(have) - set(want))
        if extra:
            raise CheckpointError(f"{self.path}: unexpected parameter(s) for this model config: {', '.join(extra)}")
        for name in want:
            if want[name] != have[name]:
                raise CheckpointError(
                    f"{self.path}: shape mismatch for parameter {name!r}: checkpoint has {have[name]}, "
                    f"model config expects {want[name]}"
                )
        vae.load_state_dict({k: v for k, v in self.params.items()})
        set_rng_state(vae.rng, self.rng_states["vae"])
        return vae

    def build_optimizer(self) -> Any:
        """Rebuild the optimizer described in the checkpoint and load its saved state."""
        desc = self.optimizer
        if not desc or "name" not in desc:
            raise CheckpointError(f"{self.path}: checkpoint does not describe its optimizer")
        opt = make_optimizer(desc["name"], desc.get("lr", 1e-3), **dict(desc.get("kwargs") or {}))
        if self.opt_state is not None:
            opt.load_state_dict({k: v.copy() for k, v in self.opt_state.items()})
        return opt


def _meta_get(meta: Mapping[str, Any], key: str, types, path: str):
    if key not in meta:
        raise CheckpointError(f"{path}: checkpoint metadata lacks {key!r}")
    value = meta[key]
    if not isinstance(value, types):
        raise CheckpointError(f"{path}: checkpoint metadata {key!r} has the wrong type ({type(value).__name__})")
    return value


def _read_arrays(npz, files, prefix: str, shapes: dict[str, Any], what: str,
                 path: str) -> dict[str, np.ndarray]:
    """Read ``{prefix}/{name}`` for every name in ``shapes``, checking presence and shape."""
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if f"{prefix}/{name}" not in files:
            raise CheckpointError(f"{path}: {what} {name!r} is listed in the metadata but missing")
        arr = _read_entry(npz, f"{prefix}/{name}", path)
        if list(arr.shape) != list(shape):
            raise CheckpointError(f"{path}: shape mismatch for {what} {name!r}: stored "
                                  f"{tuple(arr.shape)}, metadata says {tuple(shape)}")
        out[name] = arr
    return out


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and validate the checkpoint at ``path``; return a ``Checkpoint``.

    Raises ``CheckpointError`` (a ``ValueError``) with a one-line message when the file is
    missing, is not a readable ``.npz``, is not a numpyvae checkpoint, or when stored arrays
    disagree with the recorded keys/shapes (the message names the parameter). Nothing is
    unpickled (``allow_pickle=False``).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint path is a directory, not a file: {path}")
    if special_file(path):      # a FIFO would block the read below for good
        raise CheckpointError(f"{path}: not a numpyvae checkpoint: it is {special_file(path)}, not a regular file")
    kind = _file_kind(path)
    if kind is not None:
        raise CheckpointError(f"{path}: not a numpyvae checkpoint: {kind}")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError, EOFError ...
        raise CheckpointError(f"{path}: not a numpyvae checkpoint (cannot read it as .npz: {exc})") from exc
    if not hasattr(npz, "files"):
        raise CheckpointError(f"{path}: not a numpyvae checkpoint (a single array, not an .npz archive)")
    try:
        with npz:
            files = set(npz.files)
            if "meta" not in files:
                raise CheckpointError(f"{path}: not a numpyvae checkpoint (no 'meta' entry)")
            try:
                raw = npz["meta"]
                meta = json.loads(str(raw[()]))
            except Exception as exc:
                raise CheckpointError(f"{path}: not a numpyvae checkpoint (unreadable metadata: {exc})") from exc
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not a numpyvae checkpoint (format marker missing)")
            if meta.get("version") != VERSION:
                raise CheckpointError(f"{path}: checkpoint format version {meta.get('version')!r}, but this "
                                      f"numpyvae reads version {VERSION} only; continue it with the numpyvae "
                                      "that wrote it, or start a new run")

            shapes = _meta_get(meta, "param_shapes", dict, path)
            params = _read_arrays(npz, files, "param", shapes, "parameter", path)
            stray = sorted(f[len("param/"):] for f in files
                           if f.startswith("param/") and f[len("param/"):] not in shapes)
            if stray:
                raise CheckpointError(f"{path}: parameter(s) not listed in the metadata: {', '.join(stray)}")

            dtypes = meta.get("param_dtypes") or {}
            for name, arr in params.items():
                want = dtypes.get(name)
                if want is not None and str(arr.dtype) != str(want):
                    raise CheckpointError(f"{path}: parameter {name!r} is stored as {arr.dtype} but the "
                                          f"metadata says {want}")
                if arr.dtype.kind != "f":
                    raise CheckpointError(f"{path}: parameter {name!r} is stored as {arr.dtype}, expected "
                                          "a floating-point array")
                _check_finite(arr, f"parameter {name!r}", path)

            opt_shapes = meta.get("opt_shapes")
            opt_state: dict[str, np.ndarray] | None = None
            if opt_shapes is not None:
                opt_state = _read_arrays(npz, files, "opt", opt_shapes, "optimizer state", path)
                for key, arr in opt_state.items():
                    if arr.dtype.kind == "f":
                        _check_finite(arr, f"optimizer state {key!r}", path)

            rng_states: dict[str, dict[str, Any]] = {}
            for name in _meta_get(meta, "rng_names", list, path):
                entry = f"rng/{name}"
                if entry not in files:
                    raise CheckpointError(f"{path}: rng state {name!r} is missing")
                try:
                    rng_states[name] = _from_jsonable(json.loads(str(_read_entry(npz, entry, path)[()])))
                except CheckpointError:
                    raise
                except Exception as exc:
                    raise CheckpointError(f"{path}: rng state {name!r} is unreadable: {exc}") from exc
            if "vae" not in rng_states:
                raise CheckpointError(f"{path}: rng state 'vae' is missing")
    except CheckpointError:
        raise
    except Exception as exc:  # e.g. a truncated member inside an otherwise valid zip
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc})") from exc

    return Checkpoint(
        path=path,
        meta=meta,
        params=params,
        opt_state=opt_state,
        rng_states=rng_states,
        model_config=dict(meta.get("model_config") or {}),
        train_config=dict(meta.get("train_config") or {}),
        optimizer=meta.get("optimizer"),
        epoch=int(meta.get("epoch", 0)),
        step=int(meta.get("step", 0)),
        extra=dict(meta.get("extra") or {}),
    )


def _check_finite(arr: np.ndarray, what: str, path: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        raise CheckpointError(f"{path}: {what} has {int(bad.sum())} non-finite value(s) of {arr.size} "
                              f"({n_nan} NaN, {int(bad.sum()) - n_nan} inf); the checkpoint is damaged "
                              "and cannot be evaluated or resumed")


def _file_kind(path: str) -> str | None:
    """None for a zip archive (an .npz); else a short description of what the file is."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return None
    if size == 0:
        return "the file is empty (0 bytes)"
    if head.startswith(b"\x93NUMPY"):
        return f"a single NumPy array (.npy, {size} bytes), not an .npz archive"
    if head.startswith(b"\x89PNG"):
        return f"a PNG image ({size} bytes)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        first = " ".join(text.split())[:40]
        return f"a text file ({size} bytes, beginning {first!r}), not an .npz archive"
    return f"a {size}-byte binary file that is not an .npz (zip) archive"


def _read_entry(npz: Any, key: str, path: str) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except ValueError as exc:  # object arrays refused by allow_pickle=False
        raise CheckpointError(f"{path}: entry {key!r} cannot be read safely: {exc}") from exc
