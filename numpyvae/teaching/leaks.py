"""Measure whether a kit hands out an answer.

``find_answers(kit_dir)`` loads the kit's own student file (NumPy only, every exercise a
stub) and, for each exercise, tries what a student could write without deriving anything:
a call of any function or class the kit gives (its arguments drawn from the exercise's
inputs in every order, a layer run forward then backward), and every Python block of the
kit's notes run as code with the exercise's inputs in scope. Each result is compared with
the exercise's gradients on its visible cases (the grader's relative error, below 1e-6 on
every case). A gradient that merely repeats an input (dKL/dmu = mu) is no answer and is
skipped. The manifest's record of hidden answers is this measurement.
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import io
import itertools
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from .exercises import EXERCISES, build_cases

__all__ = ["find_answers", "code_blocks"]

_UPSTREAM = ("dy", "dz", "dbound", "dout", "upstream", "grad")


def _outputs(res):
    if isinstance(res, np.ndarray):
        return [res]
    if isinstance(res, (tuple, list)):
        return [r for r in res if isinstance(r, np.ndarray)]
    return []


def _forms(o):
    """o as a one-line body would return it: as is, negated, summed over K. (Multiplying a
    local derivative by the upstream gradient is the chain rule, the student's part.)"""
    try:
        o = np.asarray(o, dtype=np.float64)
    except (TypeError, ValueError):
        return
    if not np.all(np.isfinite(o)):
        return
    yield o
    yield -o
    if o.ndim >= 3:
        yield o.sum(axis=0)


def _close(a, b):
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return False
    scale = max(float(np.max(np.abs(a), initial=0)), float(np.max(np.abs(b), initial=0)), 1e-12)
    return float(np.max(np.abs(a - b), initial=0)) / scale < 1e-6


def _required(f):
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        return None
    return sum(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in sig.parameters.values())


def _quiet(f, *args):
    with np.errstate(all="ignore"), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args)


def _calls(key, f, arrays):
    n = _required(f)
    if not n or n > 4:
        return
    for perm in itertools.permutations(sorted(arrays), n):
        try:
            res = _quiet(f, *[arrays[p].copy() for p in perm])
        except Exception:       # noqa: BLE001 - most orders are simply wrong
            continue
        yield key + (perm,), _outputs(res)


def _given(module, ex_ids):
    graded = {EXERCISES[e].top for e in ex_ids if EXERCISES[e].kind == "function"}
    out = {}
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__ or name.startswith("__"):
            continue
        if inspect.isclass(obj) or (inspect.isfunction(obj) and name not in graded):
            out[name] = obj
    return out


def _given_candidates(given, arrays):
    for name, G in given.items():
        if not inspect.isclass(G):
            yield from _calls((name,), G, arrays)
            continue
        for ctor in ((), (0.0,), (1.0,)):
            try:
                obj = _quiet(G, *ctor)
            except Exception:   # noqa: BLE001
                continue
            for mname, m in inspect.getmembers(obj, callable):
                if mname.startswith("_"):
                    continue
                if mname == "backward" and hasattr(obj, "forward") and "x" in arrays \
                        and "g" in arrays:
                    try:
                        _quiet(obj.forward, arrays["x"].copy())
                        res = _quiet(obj.backward, arrays["g"].copy())
                    except Exception:   # noqa: BLE001
                        continue
                    yield (name, ctor, "forward, backward"), _outputs(res) + [
                        v for v in vars(obj).values() if isinstance(v, np.ndarray)]
                else:
                    yield from _calls((name, ctor, mname), m, arrays)


def code_blocks(text):
    """The Python blocks of a Markdown note, as (first line number, code)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if re.match(r"^\s*```\s*python\s*$", lines[i]):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append((i + 1, "\n".join(lines[i + 1:j]) + "\n"))
            i = j
        i += 1
    return out


def _inline_code(text):
    """Inline code spans of a note's prose, as (line number, code)."""
    out, fenced = [], False
    for n, ln in enumerate(text.splitlines(), 1):
        if ln.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out += [(n, m) for m in re.findall(r"`([^`\n]+)`", ln)]
    return out


def _expressions(code):
    """The expressions of ``code`` worth evaluating: assigned values, call arguments and
    assert tests with some arithmetic in them."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    out = []
    for n in ast.walk(tree):
        if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and n.value is not None:
            out.append(n.value)
        elif isinstance(n, ast.Call):
            out += list(n.args)
        elif isinstance(n, ast.Return) and n.value is not None:
            out.append(n.value)
        elif isinstance(n, ast.Expr):
            out.append(n.value)
    return [e for e in out if any(isinstance(s, (ast.BinOp, ast.UnaryOp, ast.Call, ast.Compare))
                                  for s in ast.walk(e))]


def note_expressions(notes_dir):
    """[((note, line), compiled expression, free names)] from every code block and inline code
    span of the notes in ``notes_dir``."""
    import builtins
    known = set(dir(builtins)) | {"np", "numpy"}
    out = []
    for f in sorted(Path(notes_dir).glob("*.md")):
        text = f.read_text(encoding="utf-8")
        for line, code in code_blocks(text) + _inline_code(text):
            for e in _expressions(code):
                free = sorted({n.id for n in ast.walk(e) if isinstance(n, ast.Name)} - known)
                if len(free) <= 3:
                    try:
                        out.append(((f.name, line), compile(ast.Expression(e), f.name, "eval"),
                                    free))
                    except (SyntaxError, ValueError, TypeError):
                        pass
    return out


def _snippet_candidates(exprs, module, arrays):
    """Each note expression with its free names bound to the exercise's inputs (every way)
    or to what the kit gives."""
    given = vars(module)
    pool = dict(arrays)
    if "g" in arrays:
        pool.update({u: arrays["g"] for u in _UPSTREAM})
    for where, code, free in exprs:
        options = [[(n, given[n])] if n in given and n not in pool else
                   [(n, v) for v in arrays.values()] if n not in pool else
                   [(n, pool[n])] + [(n, v) for k, v in arrays.items() if k != n]
                   for n in free]
        for combo in itertools.product(*options):
            scope = {"np": np, **{n: (v.copy() if isinstance(v, np.ndarray) else v)
                                  for n, v in combo}}
            try:
                res = _quiet(eval, code, scope)
            except Exception:   # noqa: BLE001
                continue
            yield (where[0], where[1]), _outputs(res)


def _trivial(ref, arrays):
    """Gradients equal to an input as given (or its sum over K): no answer to hide."""
    return {name for name, r in ref.items()
            if any(_close(f, r) for a in arrays.values() for f in _forms(a))}


def _reference(ex, meta, arrays):
    from .reference import reference_numeric
    with np.errstate(all="ignore"):
        return reference_numeric(ex, meta, arrays)


def find_answers(kit_dir, student_file="student_vae.py", notes=True) -> dict:
    """{exercise id: [how the answer is handed out]} for the kit in ``kit_dir`` (empty lists:
    nothing found). Runs the kit's student file and its notes' Python blocks in this process
    (the kit is numpyvae's own output: NumPy only)."""
    from .sandbox import load_student
    kit = Path(kit_dir).resolve()
    sys.path.insert(0, str(kit))
    try:
        module = _quiet(load_student, kit / student_file)
        ids = [e for e in getattr(module, "__exercises__", []) if e in EXERCISES]
        given = _given(module, ids)
        exprs = note_expressions(kit / "notes") if notes and (kit / "notes").is_dir() else []
        found = {}
        for e in ids:
            ex = EXERCISES[e]
            if ex.kind == "vae":
                found[e] = []     # its parts are the other exercises; the template is the task
                continue
            hits = None
            for meta, full in build_cases(ex, 0):
                ref = _reference(ex, meta, full)
                arrays = {k: np.array(v, dtype=np.float64) for k, v in full.items()
                          if np.ndim(v) > 0}
                skip = _trivial(ref, arrays)
                here = set()
                for source in (_given_candidates(given, arrays),
                               _snippet_candidates(exprs, module, arrays)):
                    for key, outs in source:
                        for i, o in enumerate(outs):
                            for f in _forms(o):
                                here.update((key, i, n) for n, r in ref.items()
                                            if n not in skip and _close(f, r))
                hits = here if hits is None else hits & here
            found[e] = sorted(f"{n}: {' '.join(map(str, key))} (output {i})"
                              for key, i, n in hits or ())
        return found
    finally:
        sys.path.remove(str(kit))
        sys.modules.pop("student_submission", None)
        sys.modules.pop("student_vae", None)
        sys.modules.pop("check_my_work", None)
