"""How close a graded function is to numpyvae's own: pasted source with renamed names.

The grader cannot tell a student's derivation from the public source retyped, but it can
tell the instructor. ``similarity(student_fn, reference_fn)`` compares the two functions'
syntax trees with every local name replaced by its order of first use (``v0``, ``v1``,
...), docstrings and comments dropped, attribute names, calls and constants kept; the
score is difflib's ratio of the two token sequences (1.0: the same code up to names).
A student's own correct solution differs in structure (other temporaries, another order,
loops, ``out=``) and scores well below ``REPORT``; short functions (a one-line ReLU) are
too short to tell and are not scored.
"""
from __future__ import annotations

import ast
import builtins
import difflib
import importlib
from pathlib import Path

__all__ = ["tokens", "similarity", "function_node", "reference_node", "REPORT", "MIN_TOKENS"]

REPORT = 0.8          # a score at or above this is reported to the instructor
MIN_TOKENS = 40       # a reference body shorter than this is not scored (too short to tell)
_KEEP = set(dir(builtins)) | {"np", "numpy", "self", "cls"}


def tokens(fn: ast.AST) -> list:
    """The normalised token sequence of a function's body (its docstring left out)."""
    body = list(getattr(fn, "body", [fn]))
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    names, out = {}, []

    def name(n):
        if n in _KEEP:
            return n
        return names.setdefault(n, f"v{len(names)}")

    for a in getattr(getattr(fn, "args", None), "args", []):
        name(a.arg)
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, (ast.expr_context, ast.Load, ast.Store, ast.Del)):
                continue
            if isinstance(node, ast.Name):
                out.append(name(node.id))
            elif isinstance(node, ast.arg):
                out.append(name(node.arg))
            elif isinstance(node, ast.Attribute):
                out.append("." + node.attr)
            elif isinstance(node, ast.Constant):
                out.append(repr(node.value) if isinstance(node.value, (int, float)) else "C")
            else:
                out.append(type(node).__name__)
    return out


def similarity(a: ast.AST, b: ast.AST) -> float:
    """1.0 when the two functions are the same code up to local names; near 0 when unlike."""
    ta, tb = tokens(a), tokens(b)
    if not ta or not tb:
        return 0.0
    return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()


def function_node(text: str, qualname: str):
    """The ``def`` of ``qualname`` ("f" or "Class.method") at the top of ``text``, or None."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    top, _, method = qualname.partition(".")
    for node in tree.body:
        if getattr(node, "name", None) != top:
            continue
        if not method:
            return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        if isinstance(node, ast.ClassDef):
            for f in node.body:
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name == method:
                    return f
    return None


def reference_node(module: str, qualname: str):
    """numpyvae's own ``def`` of ``qualname`` in ``numpyvae.<module>``."""
    mod = importlib.import_module(f"numpyvae.{module}")
    return function_node(Path(mod.__file__).read_text(encoding="utf-8"), qualname)


def score(text: str, module: str, qualname: str):
    """The similarity of ``qualname`` in the student's ``text`` to the reference, or None
    when either is missing or the reference is too short to tell."""
    ref, mine = reference_node(module, qualname), function_node(text, qualname)
    if ref is None or mine is None or len(tokens(ref)) < MIN_TOKENS:
        return None
    return similarity(mine, ref)
