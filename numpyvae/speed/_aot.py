"""The loops of ``_numba.py`` compiled ahead of time into one extension module, loaded without numba.

Importing numba and loading even one compiled kernel from its cache brings numba, llvmlite and
LLVM into the process: about 130 MB of memory, more than the plain training step needs in all.
So the kernels are compiled once, in a child process, by numba's ahead-of-time compiler
(``numba.pycc``) into an ordinary extension module, kept in a cache folder; the training process
imports only that file, and numba never enters it.

    python -m numpyvae.speed._aot OUTDIR      # compile the module into OUTDIR (what the child runs)

Each kernel is exported once a dtype, ``<name>_f4`` and (most of them) ``<name>_f8``, for
C-contiguous arrays of one dtype; ``Kernels`` calls the one that matches the first array and
refuses (``TypeError``, before anything runs) arguments the signature does not describe. Each lets
go of the interpreter lock while its loop runs, as the in-process kernels do (``nogil=True``). The
code is compiled for this machine's CPU (``target_cpu = 'host'``), so the cache folder is named by
a hash of everything the compiled code depends on: the source of both files, the numba, llvmlite,
numpy and Python versions, and the CPU's model and flags. The versions are read from the names of
pip's ``.dist-info`` folders: ``importlib.metadata`` would bring the email parser and zipfile into
every training process (about 1 MB of resident memory) for a name computed once. The cache folder
is ``$NUMPYVAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/numpyvae``, else ``~/.cache/numpyvae``; a
module folder appears in it only whole: it is built under a temporary name beside its final one
and renamed into place.
"""
from __future__ import annotations

import atexit
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODULE = "_numpyvae_kernels"
#: each kernel's arguments: letters name the axes of a C-contiguous array of the export's dtype
#: (arrays sharing a letter share that length), "s" is a scalar of that dtype, "d" a float64,
#: "i" an int64; "i" before letters, an int64 array; then which arguments the kernel writes;
#: then the dtypes it is exported for (the kernels built on ``_numba``'s float32 exp, log1p and
#: tanh, and the whole step, which calls float32 BLAS, exist for float32 alone)
SIGNATURES = {
    "adam": (("N", "N", "N", "N", "s", "s", "s", "s", "s", "s", "s", "s"), (0, 2, 3), ("f4", "f8")),
    "bernoulli": (("BD", "KBD", "KBD", "KBD", "KB", "KBD", "s"), (4, 5), ("f4", "f8")),
    "bernoulli_out": (("BD", "KBD", "D", "KB", "KBD", "D", "s"), (1, 3, 4, 5), ("f4",)),
    "bias_relu": (("BH", "H"), (0,), ("f4", "f8")),
    "bias_tanh": (("BH", "H"), (0,), ("f4",)),
    "relu_back": (("BH", "BH", "BH", "H"), (2, 3), ("f4", "f8")),
    "tanh_back": (("BH", "BH", "BH", "H"), (2, 3), ("f4", "f8")),
    "reparam_kl": (("BZ", "BZ", "BZ", "BZ", "KBZ", "KBZ", "B"), (5, 6), ("f4", "f8")),
    "reparam_kl_f32": (("BZ", "BZ", "KBZ", "KBZ", "B", "BZ", "BZ"), (3, 4, 5, 6), ("f4",)),
    "reparam_kl_back": (("KBZ", "BZ", "BZ", "BZ", "KBZ", "d", "BZ", "BZ"), (6, 7), ("f4", "f8")),
    "step_forward": (("i", "P", "iLR", "i", "i", "BD", "KBZ", "S", "BZ", "BZ", "KBZ", "B", "BZ", "BZ",
                      "KBD", "KB", "KBD", "D", "s"), tuple(range(7, 18)), ("f4",)),
    "step_backward": (("i", "P", "P", "iLR", "i", "i", "i", "BD", "KBZ", "S", "KBZ", "BZ", "BZ", "BZ",
                       "KBD", "D", "d", "BZ", "BZ"), (2, 17, 18), ("f4",)),
}
DTYPES = {"f4": np.dtype(np.float32), "f8": np.dtype(np.float64)}
_HERE = Path(__file__).resolve().parent


class BuildError(RuntimeError):
    """The module could not be built or loaded here (the in-process compiler may still work)."""


# ------------------------------------------------------------------------ where, under what name
def cache_root() -> Path:
    """``$NUMPYVAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/numpyvae``, else ``~/.cache/numpyvae``."""
    env = os.environ.get("NUMPYVAE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "numpyvae"


def _cpu() -> str:
    """The CPU's model name and feature flags, read from /proc/cpuinfo (without llvmlite)."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    found = {}
    for line in lines:
        field, _, value = line.partition(":")
        field = field.strip().lower()
        if field in ("model name", "flags", "features", "cpu part") and field not in found:
            found[field] = " ".join(value.split())
    return " | ".join(f"{k}: {v}" for k, v in sorted(found.items())) or platform.processor()


def _source_text() -> str:
    return "".join((_HERE / f).read_text() for f in ("_numba.py", "_aot.py"))


def _version(name: str) -> str:
    """The installed version of package ``name``, from the ``name-VERSION.dist-info`` folder pip
    writes beside it (all of them, if stale ones linger); ``importlib.metadata`` where there is
    none. Raises ``ModuleNotFoundError`` when ``name`` is not installed."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"no module named {name!r}")
    found = sorted({d.name[len(name) + 1:-len(".dist-info")]
                    for loc in spec.submodule_search_locations or ()
                    for d in Path(loc).parent.glob(f"{name}-*.dist-info")})
    if found:
        return "+".join(found)
    from importlib.metadata import version       # an install laid out some other way
    return version(name)


def key_parts() -> dict:
    """What the compiled code depends on (raises ModuleNotFoundError when numba is absent)."""
    return {
        "source": hashlib.sha256(_source_text().encode()).hexdigest(),
        "numba": _version("numba"),
        "llvmlite": _version("llvmlite"),
        "numpy": np.__version__,
        "python": sys.version,
        "abi": f"{sys.implementation.cache_tag} {importlib.machinery.EXTENSION_SUFFIXES[0]}",
        "machine": platform.machine(),
        "cpu": _cpu(),
    }


def cache_key(parts: dict | None = None) -> str:
    parts = key_parts() if parts is None else parts
    text = "\n".join(f"{k}={v}" for k, v in sorted(parts.items()))
    return "kernels-" + hashlib.sha256(text.encode()).hexdigest()[:20]


# --------------------------------------------------------------------------------- building
def _build(outdir: Path) -> None:
    """Compile the module into ``outdir`` in a child process (this one stays small)."""
    env = dict(os.environ, TMPDIR=str(outdir / "tmp"))     # the compiler's scratch files too
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_HERE.parents[1]), env.get("PYTHONPATH")) if p)
    (outdir / "tmp").mkdir()
    try:
        done = subprocess.run([sys.executable, "-m", "numpyvae.speed._aot", str(outdir)],
                              capture_output=True, text=True, env=env, timeout=1800)
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"the compiler process did not run ({type(e).__name__}: {e})") from None
    finally:
        shutil.rmtree(outdir / "tmp", ignore_errors=True)
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise BuildError(lines[-1].strip() if lines else f"the compiler exited with {done.returncode}")


def _module_file(folder: Path) -> Path | None:
    found = sorted(folder.glob(MODULE + ".*")) if folder.is_dir() else []
    return next((f for f in found if f.suffix in (".so", ".pyd")), None)


def _say(msg):
    print(f"numpyvae: {msg}", file=sys.stderr, flush=True)


def find_or_build() -> tuple[Path, bool]:
    """(the module's file, whether it was built now). Builds when the cache has none; two
    processes building at once both end with a whole module (the first rename wins)."""
    parts = key_parts()
    root = cache_root()
    final = root / cache_key(parts)
    found = _module_file(final)
    if found is not None:
        return found, False
    _say(f"compiling the fused kernels for this machine, once (about 30 s), into {final}")
    try:
        root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=root))
    except OSError as e:
        _say(f"cannot write the kernel cache {root} ({e.strerror or e}); "
             "compiling into a temporary folder for this process only")
        stage = Path(tempfile.mkdtemp(prefix="numpyvae-kernels-"))
        atexit.register(shutil.rmtree, stage, True)
        _build_in(stage, parts)
        return _module_file(stage), True
    try:
        _build_in(stage, parts)
        try:
            stage.rename(final)                  # atomic: the folder appears whole or not at all
        except OSError:                          # another process put one there first
            if _module_file(final) is None:
                raise
            shutil.rmtree(stage, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return _module_file(final), True


def _build_in(stage: Path, parts: dict) -> None:
    _build(stage)
    if _module_file(stage) is None:
        raise BuildError("the compiler finished without writing the module")
    (stage / "built-for.txt").write_text("".join(f"{k}: {v}\n" for k, v in sorted(parts.items())))


# ---------------------------------------------------------------------------------- loading
def _describe(a):
    if not isinstance(a, np.ndarray):
        return type(a).__name__
    layout = "C" if a.flags.c_contiguous else "strided"
    return f"{a.dtype}{list(a.shape)} {layout}{'' if a.flags.writeable else ' read-only'}"


def _checked(name, sig, written, exports):
    """``exports[dtype]`` behind a check of every argument against ``sig``: the compiled
    function itself would read (and write) memory of any dtype, length or layout it is handed.

    The check is written out as code for each kernel; for ``relu_back`` it reads
    ``if fn is None or not (type(a0) is ndarray and a0.dtype == dt and a0.ndim == 2 and
    a0.flags.c_contiguous and ...): raise``, then ``B, H = a0.shape`` and ``if a1.shape !=
    (B, H) or ... or a3.shape != (H,): raise``. A loop over the signature cost several
    microseconds a call, a noticeable part of the smallest kernels' time; this costs about one.
    """
    params = ", ".join(f"a{i}" for i in range(len(sig)))
    first = next(i for i, axes in enumerate(sig) if axes not in ("s", "d", "i") and axes[0] != "i")
    tests, bind, shapes, bound = [], [], [], set()
    for i, axes in enumerate(sig):
        if axes in ("s", "d"):
            continue
        if axes == "i":
            tests.append(f"type(a{i}) is int")
            continue
        dtype = "dt"
        if axes.startswith("i"):
            axes, dtype = axes[1:], "i8"
        tests += [f"type(a{i}) is ndarray", f"a{i}.dtype == {dtype}", f"a{i}.ndim == {len(axes)}",
                  f"a{i}.flags.c_contiguous"] + ([f"a{i}.flags.writeable"] if i in written else [])
        new = [ax for ax in axes if ax not in bound]
        if new and len(new) == len(axes):
            bind.append(f"    {', '.join(axes)}, = a{i}.shape\n")
        else:
            bind += [f"    {ax} = a{i}.shape[{axes.index(ax)}]\n" for ax in new]
            shapes.append(f"a{i}.shape != ({', '.join(axes)},)")
        bound.update(axes)
    text = (f"def {name}({params}):\n"
            f"    dt = getattr(a{first}, 'dtype', None)\n"
            f"    fn = exports.get(dt)\n"
            f"    if fn is None or not ({' and '.join(tests)}):\n"
            f"        raise refuse(({params},))\n"
            + "".join(bind)
            + (f"    if {' or '.join(shapes)}:\n        raise refuse(({params},))\n" if shapes else "")
            + f"    fn({params})\n")

    def refuse(args):
        return TypeError(f"{name}: the arguments {', '.join(map(_describe, args))} do not match "
                         f"{sig} of one float dtype (writing {list(written)})")
    scope = {"ndarray": np.ndarray, "exports": exports, "refuse": refuse, "i8": np.dtype(np.int64)}
    exec(text, scope)  # noqa: S102 - text made above from SIGNATURES
    return scope[name]


class Kernels:
    """The compiled module with ``_numba``'s names: ``k.adam(...)`` runs ``adam_f4`` or
    ``adam_f8`` as the first array's dtype says, after ``_checked`` has looked at every argument."""

    def __init__(self, module, path):
        self.module, self.path = module, path
        for name, (sig, written, tags) in SIGNATURES.items():
            exports = {DTYPES[tag]: getattr(module, f"{name}_{tag}") for tag in tags}
            setattr(self, name, _checked(name, sig, written, exports))


def _has_pycc() -> bool:
    """Whether numba ships its ahead-of-time compiler (deprecated there), looked up on disk:
    ``find_spec("numba.pycc")`` would import numba itself."""
    spec = importlib.util.find_spec("numba")
    return spec is not None and any((Path(p) / "pycc" / "__init__.py").is_file()
                                     for p in (spec.submodule_search_locations or ()))


def load() -> tuple[Kernels, bool]:
    """(the kernels, whether they were compiled now); ``BuildError`` when that cannot be done."""
    if not _has_pycc():
        raise BuildError("numba.pycc, numba's ahead-of-time compiler, is not installed")
    path, built = find_or_build()
    spec = importlib.util.spec_from_file_location(MODULE, path)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return Kernels(module, path), built
    except (ImportError, AttributeError, OSError) as e:
        raise BuildError(f"{path} does not load ({type(e).__name__}: {e})") from None


# ----------------------------------------------------------------- the child: the compiler
def _numba_type(axes, tag):
    if axes in ("s", "d", "i"):
        return {"s": tag, "d": "f8", "i": "i8"}[axes]
    if axes.startswith("i"):
        axes, tag = axes[1:], "i8"
    return f"{tag}[{', '.join([':'] * (len(axes) - 1) + ['::1'])}]"


_EXPORT = """\
def export({args}):
    state = release_gil()
    failed = False
    try:
        kernel({args})
    except Exception:            # an allocation, or the step's shape checks: keep the lock's order
        failed = True
    take_gil(state)
    if failed:
        raise RuntimeError("a fused kernel stopped: it could not allocate a work array, or its "
                           "arrays' shapes do not fit one another")
"""


def compile_module(outdir) -> None:
    """Export every kernel of ``_numba.py`` for its dtypes into ``outdir`` (imports numba).

    Each export is a thin function that calls the kernel: the kernel keeps its own compiler
    options (fastmath, error model), which ``pycc`` would not give it if exported directly.
    The export lets go of the interpreter lock around the loop, as ``nogil=True`` does for the
    in-process kernels (``pycc`` ignores that option), so two threads run kernels at once.
    """
    import numba
    from numba import types
    from numba.pycc import CC

    from . import _numba

    scope = {"release_gil": types.ExternalFunction("PyEval_SaveThread", types.voidptr()),
             "take_gil": types.ExternalFunction("PyEval_RestoreThread", types.void(types.voidptr))}
    cc = CC(MODULE)
    cc.output_dir = str(outdir)
    cc.target_cpu = "host"
    for name, (sig, _, tags) in SIGNATURES.items():
        disp = getattr(_numba, name)
        kernel = numba.njit(**disp.targetoptions)(disp.py_func)   # the same loop, not cached
        local = dict(scope, kernel=kernel)
        exec(_EXPORT.format(args=", ".join(f"a{i}" for i in range(len(sig)))), local)  # noqa: S102
        for tag in tags:
            types_ = ", ".join(_numba_type(axes, tag) for axes in sig)
            cc.export(f"{name}_{tag}", f"void({types_})")(local["export"])
    cc.compile()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m numpyvae.speed._aot OUTDIR")
    import warnings
    warnings.simplefilter("ignore")          # pycc's notice that it is deprecated
    compile_module(sys.argv[1])
