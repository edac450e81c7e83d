"""Find and read a submission however it was handed in.

A student uploads ``student_vae.py``, or ``student_vae (1).py``, or the file inside a
folder, or a notebook beside the untouched stub. ``find_submission(folder)`` picks the
file with the most exercises written (stubs still raise ``NotImplementedError``) and says
which it picked. ``notebook_code(path)`` turns a notebook into a Python file of its
definitions alone: magics (``%matplotlib inline``), shell lines (``!pip install ...``),
plots, prints and self-check cells are left out, so only the exercise functions (and the
given code they need) are graded.
"""
from __future__ import annotations

import ast
import builtins
import json
import re
import sys
from pathlib import Path

__all__ = ["find_submission", "notebook_code", "written_exercises", "allowed_import"]

_SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", "__MACOSX", ".git", "notes"}
_KIT_FILES = {"check_my_work.py"}
_MAGIC = re.compile(r"^(\s*)(?:[%!]|\w[\w, ]*=\s*[%!])")


def allowed_import(name: str) -> bool:
    """True for NumPy, the standard library and __future__: what a submission may import."""
    top = name.split(".")[0]
    return top in ("numpy", "__future__") or top in sys.stdlib_module_names


# --------------------------------------------------------------------------- notebooks
def _cell_source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _strip_magics(src: str) -> str:
    """IPython-only lines (magics, shell escapes) become ``pass`` at the same indentation."""
    lines = src.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return ""                                  # a cell magic: not Python at all
    out = []
    for ln in lines:
        m = _MAGIC.match(ln)
        out.append(m.group(1) + "pass" if m else ln)
    return "\n".join(out)


def _loaded_names(node) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}


def _called_roots(node) -> set:
    roots = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            while isinstance(f, (ast.Attribute, ast.Subscript, ast.Call)):
                f = f.value if not isinstance(f, ast.Call) else f.func
            if isinstance(f, ast.Name):
                roots.add(f.id)
    return roots


def _bound(targets) -> set:
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def notebook_code(path) -> str:
    """The definitions of a student notebook as one Python file.

    Kept: imports of NumPy and the standard library, functions, classes, and assignments
    that only name what is already kept (``ACTIVATIONS = {...}``, ``LOG_2PI = ...``) and
    call none of the notebook's own functions or classes. Left out: the self-check cells,
    magics and shell lines, every other statement (plots, prints, trial runs), and a cell
    that is not Python.
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    future, kept = [], []
    known = set(dir(builtins))
    own = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or \
                "numpyvae-check" in cell.get("metadata", {}).get("tags", []):
            continue
        src = _strip_magics(_cell_source(cell))
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        lines = src.splitlines(keepends=True)
        for node in tree.body:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            text = "".join(lines[first - 1:node.end_lineno]).rstrip() + "\n"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mod = node.module if isinstance(node, ast.ImportFrom) else None
                names = [mod] if mod is not None else [a.name for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.level:
                    continue
                if not all(allowed_import(n) for n in names):
                    continue
                (future if mod == "__future__" else kept).append(text)
                known |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                kept.append(text)
                known.add(node.name)
                own.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                value = node.value
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if value is None or not _loaded_names(value) <= known \
                        or _called_roots(value) & own \
                        or not all(isinstance(t, (ast.Name, ast.Tuple)) for t in targets):
                    continue
                kept.append(text)
                known |= _bound(targets)
    return "".join(dict.fromkeys(future)) + "\n\n".join(kept) + "\n"


# --------------------------------------------------------------------------- which file
def _source(path: Path) -> str:
    return notebook_code(path) if path.suffix == ".ipynb" else \
        path.read_text(encoding="utf-8", errors="replace")


def _is_stub(fn) -> bool:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]                                   # the docstring
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def written_exercises(path) -> tuple:
    """(exercises written, exercises still stubs) in a .py or .ipynb file, read with ast;
    (0, 0) when it is not Python."""
    from .exercises import EXERCISES
    names = {ex.qualname for ex in EXERCISES.values()}
    try:
        tree = ast.parse(_source(Path(path)))
    except (OSError, SyntaxError, ValueError):
        return 0, 0
    done = todo = 0
    for node in tree.body:
        fns = [(node.name, node)] if isinstance(node, ast.FunctionDef) else \
            [(f"{node.name}.{f.name}", f) for f in node.body if isinstance(f, ast.FunctionDef)] \
            if isinstance(node, ast.ClassDef) else []
        for qual, fn in fns:
            if qual in names:
                if _is_stub(fn):
                    todo += 1
                else:
                    done += 1
    return done, todo


def _candidates(folder: Path) -> list:
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or p.suffix not in (".py", ".ipynb") or p.name in _KIT_FILES \
                or any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        out.append(p)
    return out


def find_submission(folder, expected="student_vae.py"):
    """(path, message) of the file to grade in ``folder``, or (None, message) when there is
    none. The file with the most exercises written wins; on a tie the expected name, then a
    .py file, then the shallowest. The message names the file and, when there was a choice
    or the name differs, why this one."""
    folder = Path(folder)
    found = _candidates(folder)
    if not found:
        return None, (f"no .py or .ipynb file in the submission (expected {expected}, or a "
                      "notebook)")
    stem = Path(expected).stem
    scored = [(written_exercises(p), p) for p in found]

    def rank(item):
        (done, todo), p = item
        return (done, done + todo > 0, p.name == expected, p.name.startswith(stem),
                p.suffix == ".py", -len(p.relative_to(folder).parts))

    (done, todo), best = max(scored, key=rank)
    rel = best.relative_to(folder).as_posix()
    if len(found) == 1 and rel == expected:
        return best, ""
    msg = f"graded {rel} ({done} of {done + todo} exercises written)"
    others = [f"{p.relative_to(folder).as_posix()} ({d} written)" for (d, _), p in scored
              if p != best and d + _ > 0]
    if others:
        msg += "; also found " + ", ".join(others) + ": the file with the most exercises " \
               "written is graded"
    elif rel != expected:
        msg += f"; expected {expected}"
    return best, msg
