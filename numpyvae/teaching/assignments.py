"""Turn numpyvae's backward passes into exercises, and grade what students hand back.

``make_assignment(out_dir)`` writes ``student_vae.py``: copies of chosen numpyvae
functions and classes, cut out of the real source with ``ast`` so the rest of
the text (comments, docstrings, forward passes) stays as it is, with the body of
each exercise replaced by its docstring and ``raise NotImplementedError``. It
also writes a ``README.md`` for the student and an ``assignment.json`` manifest.

``grade(path)`` imports the student's file and runs numpyvae's own finite
difference checks on the student's gradients in float64, on several random
shapes. The scalar that is differentiated numerically is always computed by the
*reference* forward pass, so a forward/backward pair that is wrong in the same
way on both sides cannot pass.

Command line (``main(argv) -> int``)::

    python -m numpyvae.teaching.assignments make OUT_DIR [--exercises a,b] [--hide-answers]
    python -m numpyvae.teaching.assignments grade STUDENT_FILE [--exercises a,b | --manifest FILE]
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import json
import sys
import textwrap
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import gradcheck


__all__ = ["EXERCISES", "Exercise", "ExerciseResult", "GradeReport", "make_assignment",
           "grade", "main"]

STUDENT_FILE = "student_vae.py"
MANIFEST_FILE = "assignment.json"
STATUSES = ("pass", "FAIL", "not attempted", "error")


@dataclass(frozen=True)
class Exercise:
    """One exercise: which reference object becomes a stub, and what the student must do.

    ``qualname`` is "function" or "Class.method" inside ``numpyvae.<module>``.
    ``context``: further top-level names of that module copied in full, so the
    student sees the forward pass being differentiated. ``task``: the job in
    words, without the answer (used by the README and by ``hide_answers``).
    ``class_doc``: with ``hide_answers``, replaces the docstring of the class
    that holds the stubbed method (its own docstring states the derivative).
    """
    id: str
    module: str
    qualname: str
    task: str
    context: tuple = ()
    class_doc: str | None = None

    @property
    def top(self) -> str:
        return self.qualname.split(".")[0]

    @property
    def method(self) -> str | None:
        parts = self.qualname.split(".")
        return parts[1] if len(parts) > 1 else None


def _act(name, what):
    return Exercise(
        f"{name.lower()}_backward", "layers", f"{name}.backward",
        f"Given dy = dL/dy, the gradient of the loss with respect to this layer's output, "
        f"return dL/dx with the shape of x for y = {what}. Use what forward() stored.",
        class_doc=f"Element-wise activation y = {what}.")


EXERCISES = {e.id: e for e in [
    Exercise("linear_backward", "layers", "Linear.backward",
             "Given dy = dL/dy (B, D_out) for y = x @ W + b, write dL/dW into self.dW and "
             "dL/db into self.db (overwrite the arrays in place, never add to them) and return "
             "dL/dx (B, D_in), or None when self.input_grad is False."),
    _act("ReLU", "max(x, 0)"),
    _act("Tanh", "tanh(x)"),
    _act("Sigmoid", "1 / (1 + exp(-x))"),
    _act("Softplus", "log(1 + exp(x))"),
    Exercise("reparameterize_backward", "reparam", "reparameterize_backward",
             "Given dz = dL/dz (K, B, Z) for z = reparameterize(mu, logvar, eps), return "
             "(dL/dmu, dL/dlogvar), each (B, Z), with eps held fixed.",
             context=("reparameterize",)),
    Exercise("kl_normal_std_grad", "kl", "kl_normal_std_grad",
             "Return (dKL/dmu, dKL/dlogvar) for KL = kl_normal_std(mu, logvar), each with the "
             "shape of mu: the partial derivatives of each example's KL.",
             context=("kl_normal_std",)),
    Exercise("bernoulli_log_prob_grad", "likelihoods", "bernoulli_log_prob_grad",
             "Return the derivative of bernoulli_log_prob(x, logits) with respect to every "
             "logit, with the shape of logits (x broadcasts against logits).",
             context=("bernoulli_log_prob",)),
    Exercise("gaussian_log_prob_grad", "likelihoods", "gaussian_log_prob_grad",
             "Return the derivative of gaussian_log_prob(x, mean, c) with respect to every "
             "entry of mean, with the shape of mean (c is a fixed positive number).",
             context=("gaussian_log_prob",)),
    Exercise("gaussian_learned_log_prob_grad", "likelihoods", "gaussian_learned_log_prob_grad",
             "Return (d/dmean, d/dlogvar) of gaussian_learned_log_prob(x, mean, logvar), each "
             "with the shape of mean.",
             context=("gaussian_learned_log_prob",)),
    Exercise("vae_backward", "model", "VAE.backward",
             "Fill self.grads with the gradient of the loss of the last forward() (write into "
             "the live arrays, never add) and set self.dmu, self.dlogvar: likelihood gradient "
             "-> decoder -> z -> (mu, logvar) along the eps-path, plus the KL term, -> encoder. "
             "forward() keeps what you need in self._cache; both kl='closed' and kl='mc' and "
             "the q=(mu, logvar) override must work."),
]}
DEFAULT_EXERCISES = tuple(EXERCISES)
_MODULE_ORDER = ("layers", "reparam", "kl", "likelihoods", "model")


# --------------------------------------------------------------------------- source cutting
class _Source:
    """The parsed text of one numpyvae module: top-level definitions and imports."""

    def __init__(self, module: str):
        mod = importlib.import_module(f"numpyvae.{module}")
        self.name = module
        self.text = Path(mod.__file__).read_text(encoding="utf-8")
        self.lines = self.text.splitlines(keepends=True)
        self.tree = ast.parse(self.text)
        self.defs, self.imports = {}, {}
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                self.defs[node.name] = node
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.defs[t.id] = node
            elif isinstance(node, ast.Import):
                for a in node.names:
                    stmt = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
                    self.imports[a.asname or a.name.split(".")[0]] = stmt
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                base = ("numpyvae." if node.level else "") + (node.module or "")
                for a in node.names:
                    self.imports[a.asname or a.name] = (base, a.name, a.asname)

    def segment(self, node) -> tuple[int, int]:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return first, node.end_lineno

    def closure(self, names) -> set:
        """``names`` plus every top-level definition they use, transitively."""
        todo, seen = list(names), set()
        while todo:
            n = todo.pop()
            if n in seen or n not in self.defs:
                continue
            seen.add(n)
            todo.extend(_used_names(self.defs[n]))
        return seen


def _shape_of(node) -> str:
    """The code of ``node`` with its arguments renamed by position (comments ignored).

    The same helper appears in two modules with a different argument name
    (``_sigmoid(x)`` and ``_sigmoid(a)``); those count as one definition.
    """
    node = ast.parse(ast.unparse(node)).body[0]
    if isinstance(node, ast.FunctionDef):
        names = {a.arg: f"_arg{i}" for i, a in enumerate(node.args.args)}
        for n in ast.walk(node):
            if isinstance(n, ast.arg) and n.arg in names:
                n.arg = names[n.arg]
            elif isinstance(n, ast.Name) and n.id in names:
                n.id = names[n.id]
    return ast.dump(node)


def _used_names(node) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _find_method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise LookupError(f"{cls.name} has no method {name}")


def _docstring_node(fn):
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        return first
    return None


def _derivations(doc: str | None) -> list:
    return [ln.strip() for ln in (doc or "").splitlines() if ln.strip().startswith("Derivation:")]


def _quote_doc(text: str, indent: str) -> str:
    body = text.replace('"""', "'''").rstrip("\n")
    lines = body.splitlines()
    out = indent + '"""' + lines[0]
    for ln in lines[1:]:
        out += "\n" + (indent + ln if ln.strip() else "")
    return out + "\n" + indent + '"""\n'


def _stub_edits(src: _Source, fn, number: int, ex: Exercise, hide: bool, derivs) -> list:
    """(first_line, last_line, new_text) edits that turn ``fn``'s body into a stub."""
    indent = " " * fn.body[0].col_offset
    raise_line = (f'{indent}raise NotImplementedError("Exercise {number}: {ex.id} '
                  f'is not implemented yet")\n')
    task_doc = textwrap.fill(f"Exercise {number}: {ex.task}", width=88 - len(indent)) \
        + "\n\n" + "\n".join(derivs)
    doc = _docstring_node(fn)
    if doc is not None:
        new_doc = _quote_doc(task_doc, indent) if hide else "".join(
            src.lines[doc.lineno - 1:doc.end_lineno])
        return [(doc.lineno, fn.end_lineno, new_doc + raise_line)]
    start = fn.body[0].lineno
    while start - 1 > fn.lineno and src.lines[start - 2].strip()[:1] in ("", "#"):
        start -= 1    # comments just above the first statement belong to the body
    return [(start, fn.end_lineno, _quote_doc(task_doc, indent) + raise_line)]


def _apply(lines: list, first: int, edits: list) -> str:
    """Text of source lines ``first``.. with ``edits`` (absolute line numbers) applied."""
    out = list(lines)
    for a, b, text in sorted(edits, key=lambda e: -e[0]):
        out[a - first:b - first + 1] = [text]
    return "".join(out)


def _exercise_derivations(src: _Source, ex: Exercise) -> list:
    node = src.defs[ex.top]
    if ex.method:
        found = _derivations(ast.get_docstring(_find_method(node, ex.method)))
        if found:
            return found
    return _derivations(ast.get_docstring(node))


def _build(exercises, solutions: bool, hide: bool):
    """(file text, [(number, exercise, derivation lines, name in file)])."""
    sources = {m: _Source(m) for m in _MODULE_ORDER}
    numbered = list(enumerate(exercises, start=1))
    chunks, defined, imports, listing = [], {}, set(), []
    for module in _MODULE_ORDER:
        src = sources[module]
        mine = [(n, ex) for n, ex in numbered if ex.module == module]
        if not mine:
            continue
        if module == "model":
            continue     # handled below: the VAE is a subclass, not a copy
        wanted = src.closure([ex.top for _, ex in mine] + [c for _, ex in mine for c in ex.context])
        nodes = sorted({id(src.defs[n]): src.defs[n] for n in wanted}.values(),
                       key=lambda nd: nd.lineno)
        for node in nodes:
            a, b = src.segment(node)
            names = [node.name] if hasattr(node, "name") else [
                t.id for t in node.targets if isinstance(t, ast.Name)]
            edits = []
            for n, ex in mine:
                if ex.top not in names:
                    continue
                derivs = _exercise_derivations(src, ex)
                listing.append((n, ex, derivs, ex.qualname))
                fn = _find_method(node, ex.method) if ex.method else node
                if not solutions:
                    edits += _stub_edits(src, fn, n, ex, hide, derivs)
                if hide and ex.method and ex.class_doc:
                    d = _docstring_node(node)
                    if d is not None:
                        text = ex.class_doc + "\n\n" + "\n".join(_derivations(ast.get_docstring(node)))
                        edits.append((d.lineno, d.end_lineno,
                                      _quote_doc(text, " " * d.col_offset)))
            text = _apply(src.lines[a - 1:b], a, edits)
            key = _shape_of(node) if not edits else text
            clash = [n for n in names if n in defined and defined[n] != key]
            if clash:
                raise RuntimeError(f"two different definitions of {clash} in the student file")
            if all(n in defined for n in names):
                continue     # the same helper (e.g. _sigmoid) from a second module
            for n in names:
                defined[n] = key
            chunks.append(text)
            for used in _used_names(node):
                if used in src.imports and used not in wanted:
                    imports.add(src.imports[used])
    vae = [(n, ex) for n, ex in numbered if ex.module == "model"]
    if vae:
        src = sources["model"]
        for n, ex in vae:
            cls = src.defs[ex.top]
            fn = _find_method(cls, ex.method)
            derivs = _exercise_derivations(src, ex)
            listing.append((n, ex, derivs, ex.qualname))
            a, b = src.segment(fn)
            edits = [] if solutions else _stub_edits(src, fn, n, ex, hide, derivs)
            method_text = _apply(src.lines[a - 1:b], a, edits)
            head = (f"class {ex.top}(_Reference{ex.top}):\n"
                    f'    """numpyvae\'s {ex.top} with {ex.method}() left for you to write.\n\n'
                    f"    Everything else (forward, the layers, the likelihood objects) is the\n"
                    f"    reference implementation; read numpyvae/model.py for what forward()\n"
                    f"    stores in self._cache.\n"
                    f'    """\n\n')
            chunks.append(head + method_text)
            imports.add(("numpyvae.model", ex.top, f"_Reference{ex.top}"))
            for used in _used_names(fn):
                if used in src.imports and used not in defined:
                    imports.add(src.imports[used])
    return _render(chunks, imports, [ex.id for ex in exercises]), listing


def _render(chunks, imports, ids) -> str:
    # numpy always: a student writing a backward from scratch needs it even where ours did not
    plain = sorted({i for i in imports if isinstance(i, str)} | {"import numpy as np"})
    froms = {}
    for base, name, asname in (i for i in imports if not isinstance(i, str)):
        froms.setdefault(base, []).append(name + (f" as {asname}" if asname else ""))
    head = ['"""Exercises generated from numpyvae: fill in every body that raises\n',
            "NotImplementedError. Do not change the forward passes: the grader differentiates\n",
            "numpyvae's own forward, so only your gradients count. Check yourself with\n",
            "    python -m numpyvae.teaching.assignments grade student_vae.py\n", '"""\n',
            "from __future__ import annotations\n\n"]
    head += [p + "\n" for p in plain]
    head += [f"from {b} import {', '.join(sorted(n))}\n" for b, n in sorted(froms.items())]
    head.append(f"\n__exercises__ = {json.dumps(ids)}\n")
    return "".join(head) + "".join("\n\n" + c for c in chunks)


def _select(exercises) -> list:
    if exercises is None:
        return [EXERCISES[i] for i in DEFAULT_EXERCISES]
    if isinstance(exercises, str):
        exercises = [e for e in exercises.split(",") if e.strip()]
    out = []
    for e in exercises:
        e = e.strip()
        if e not in EXERCISES:
            raise ValueError(f"exercises: unknown exercise {e!r}; expected names from "
                             f"{', '.join(EXERCISES)}")
        if EXERCISES[e] not in out:
            out.append(EXERCISES[e])
    if not out:
        raise ValueError("exercises must name at least one exercise")
    return out


def make_assignment(out_dir, exercises=None, solutions=False, hide_answers=False) -> Path:
    """Write ``student_vae.py``, ``README.md`` and ``assignment.json`` into ``out_dir``.

    exercises: ids from ``EXERCISES`` (default: all), in the order they are numbered.
    solutions=True keeps the reference bodies (an answer key that must grade n / n).
    hide_answers=True replaces the docstrings of the stubs (which in numpyvae state
    the derivative) with the task in words and the Derivation line. Returns the
    path of the student file.
    """
    chosen = _select(exercises)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir must be a directory, got the file {out}")
    text, listing = _build(chosen, bool(solutions), bool(hide_answers))
    compile(text, STUDENT_FILE, "exec")   # a generator bug should fail here, not in class
    out.mkdir(parents=True, exist_ok=True)
    path = out / STUDENT_FILE
    path.write_text(text, encoding="utf-8")
    (out / "README.md").write_text(_readme(sorted(listing, key=lambda r: r[0])),
                                   encoding="utf-8")
    (out / MANIFEST_FILE).write_text(json.dumps(
        {"exercises": [e.id for e in chosen], "file": STUDENT_FILE}, indent=2) + "\n",
        encoding="utf-8")
    return path


def _readme(listing) -> str:
    lines = ["# VAE gradients: your exercises", "",
             f"Everything you write goes into `{STUDENT_FILE}`. Each exercise is a function or a",
             "method whose body is `raise NotImplementedError(...)`: replace that line with your",
             "code (keep the name and the arguments). The forward passes are already there and",
             "are not graded: the grader compares your gradient with finite differences of",
             "numpyvae's own forward pass, in float64, on several random shapes, and passes it",
             f"when the relative error is below {gradcheck.PASS:.0e}.", "",
             "| # | exercise | where in the file | read first |", "|---|---|---|---|"]
    for n, ex, derivs, where in listing:
        notes = "; ".join(d.replace("Derivation:", "").strip() for d in derivs) or "-"
        lines.append(f"| {n} | `{ex.id}` | `{where}` | {notes} |")
    lines += ["", "## What each exercise asks", ""]
    for n, ex, derivs, where in listing:
        lines += [f"**{n}. `{ex.id}`** (`{where}`). {ex.task}", ""]
    lines += ["## Checking your work", "",
              "From the folder holding the file (numpyvae must be installed):", "",
              "```", f"python -m numpyvae.teaching.assignments grade {STUDENT_FILE}", "```", "",
              "Check a single exercise with `--exercises relu_backward` (comma-separated ids).",
              "Each row says `pass`, `FAIL` (wrong gradient or wrong shape), `not attempted`",
              "(still raises NotImplementedError) or `error` (your code raised something else).",
              ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- grading
class _StudentError(Exception):
    """An exception raised inside the student's code (other than NotImplementedError)."""

    def __init__(self, exc):
        super().__init__(f"{type(exc).__name__}: {exc}")


class _Mismatch(Exception):
    """The student's result has the wrong type or shape: a FAIL, not an error."""


def _guard(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as exc:     # any bug in student code is reported, never re-raised
            raise _StudentError(exc) from exc
    return wrapper


@dataclass
class ExerciseResult:
    """One graded exercise: status in STATUSES, worst relative error (None if not run)."""
    exercise: str
    status: str
    max_error: float | None = None
    message: str = ""


@dataclass
class GradeReport:
    """All graded exercises; ``score`` is "k / n", ``passed`` only when every one passes."""
    path: str
    results: list = field(default_factory=list)
    threshold: float = gradcheck.PASS

    @property
    def n_passed(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def score(self) -> str:
        return f"{self.n_passed} / {len(self.results)}"

    @property
    def passed(self) -> bool:
        return bool(self.results) and self.n_passed == len(self.results)

    def status(self, exercise: str) -> str:
        for r in self.results:
            if r.exercise == exercise:
                return r.status
        raise KeyError(f"exercise {exercise!r} was not graded")

    def to_dict(self) -> dict:
        return {"path": self.path, "score": self.score, "threshold": self.threshold,
                "results": [vars(r) for r in self.results]}

    def __str__(self):
        w = max([len(r.exercise) for r in self.results] + [8])
        lines = [f"grading {self.path}",
                 f"{'exercise':<{w}}  {'status':<13}  {'max rel err':>11}  note",
                 "-" * (w + 40)]
        for r in self.results:
            err = "-" if r.max_error is None else f"{r.max_error:.2e}"
            lines.append(f"{r.exercise:<{w}}  {r.status:<13}  {err:>11}  {r.message}".rstrip())
        lines.append(f"score {self.score} (pass: max relative error < {self.threshold:.0e})")
        return "\n".join(lines)

    __repr__ = __str__


def _load_student(path: Path):
    name = f"_numpyvae_student_{zlib.crc32(str(path.resolve()).encode()):08x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module        # dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def _as_grads(out, shapes, what):
    """The student's return value as float64 arrays with the expected shapes."""
    if len(shapes) > 1:
        if not isinstance(out, (tuple, list)) or len(out) != len(shapes):
            raise _Mismatch(f"{what} must return a tuple of {len(shapes)} arrays, "
                            f"got {type(out).__name__}")
    else:
        out = (out,)
    arrays = []
    for o, s in zip(out, shapes):
        if o is None:
            raise _Mismatch(f"{what} returned None where an array of shape {s} was expected")
        try:
            a = np.array(o, dtype=np.float64)
        except (TypeError, ValueError):
            raise _Mismatch(f"{what} returned {type(o).__name__}, not an array") from None
        if a.shape != tuple(s):
            raise _Mismatch(f"{what} returned shape {a.shape}, expected {tuple(s)}")
        arrays.append(a)
    return arrays


def _worst(errors) -> float:
    errors = [float(e) for e in errors]
    return float("inf") if any(not np.isfinite(e) for e in errors) else max(errors, default=0.0)


def _grade_layer(student, ex, rng):
    from .. import layers
    ref_cls = getattr(layers, ex.top)
    fn = _guard(getattr(getattr(student, ex.top), ex.method))
    graded = type(ex.top, (ref_cls,), {ex.method: fn})   # same name: clearer error messages
    errors = []
    if ex.top == "Linear":
        cases = [(1, 1, 1), (3, 4, 4), (5, 3, 2)]     # (B, D_in, D_out); 4x4 catches a transposed dW
    else:
        cases = [(1, 1), (3, 4), (6, 5)]
    for case in cases:
        if ex.top == "Linear":
            layer = graded(case[1], case[2], rng, init="glorot", dtype=np.float64)
            layer.b[...] = rng.standard_normal(layer.b.shape)
        else:
            layer = graded()
        x = rng.standard_normal(case[:2])
        x += 0.1 * np.sign(x)     # keep finite differences away from the ReLU kink
        before = dict(layer.grads()) if hasattr(layer, "grads") else {}
        y = layer.forward(x.copy())
        dx = layer.backward(rng.standard_normal(np.shape(y)))
        _as_grads(dx, [x.shape], "backward")
        params = layer.params() if hasattr(layer, "params") else {}
        for k, p in params.items():
            g = layer.grads()[k]
            _as_grads(g, [p.shape], f"backward (gradient of {k})")
            if g is not before[k]:
                # the VAE keeps views of these arrays: a new array would never reach it
                raise _Mismatch(f"backward replaced the gradient array of {k} instead of "
                                f"writing into it")
        with np.errstate(all="ignore"):
            errors.append(gradcheck.check_layer(layer, x, seed=int(rng.integers(2**31))).max_error)
    return _worst(errors)


def _rand_x01(rng, shape):
    x = rng.random(shape)
    x[..., ::2] = np.round(x[..., ::2])     # binary pixels and grey levels both
    return x


def _function_cases(ex_id, rng):
    """(reference scalar f(inputs), inputs, call(student, inputs), wrt names) per random shape."""
    from .. import kl, likelihoods, reparam
    cases = []
    if ex_id == "reparameterize_backward":
        for K, B, Z in [(1, 1, 1), (1, 3, 2), (3, 4, 5)]:
            g = rng.standard_normal((K, B, Z))
            inp = dict(mu=rng.standard_normal((B, Z)), logvar=rng.standard_normal((B, Z)),
                       eps=rng.standard_normal((K, B, Z)))
            cases.append((lambda i, g=g: np.sum(reparam.reparameterize(i["mu"], i["logvar"],
                                                                       i["eps"]) * g),
                          inp, lambda fn, i, g=g: fn(g.copy(), i["logvar"].copy(), i["eps"].copy()),
                          ("mu", "logvar")))
    elif ex_id == "kl_normal_std_grad":
        for shape in [(1, 1), (3, 2), (4, 5)]:
            inp = dict(mu=rng.standard_normal(shape), logvar=rng.standard_normal(shape))
            cases.append((lambda i: np.sum(kl.kl_normal_std(i["mu"], i["logvar"])), inp,
                          lambda fn, i: fn(i["mu"].copy(), i["logvar"].copy()), ("mu", "logvar")))
    elif ex_id == "bernoulli_log_prob_grad":
        for xs, ls in [((1, 1), (1, 1)), ((3, 4), (3, 4)), ((2, 5), (3, 2, 5))]:
            x = _rand_x01(rng, xs)
            inp = dict(logits=2 * rng.standard_normal(ls))
            cases.append((lambda i, x=x: np.sum(likelihoods.bernoulli_log_prob(x, i["logits"])),
                          inp, lambda fn, i, x=x: fn(x.copy(), i["logits"].copy()), ("logits",)))
    elif ex_id == "gaussian_log_prob_grad":
        for xs, ms, c in [((1, 1), (1, 1), 1.0), ((3, 4), (3, 4), 0.3), ((2, 5), (3, 2, 5), 2.5)]:
            x = rng.standard_normal(xs)
            inp = dict(mean=rng.standard_normal(ms))
            cases.append((lambda i, x=x, c=c: np.sum(likelihoods.gaussian_log_prob(x, i["mean"], c)),
                          inp, lambda fn, i, x=x, c=c: fn(x.copy(), i["mean"].copy(), c),
                          ("mean",)))
    elif ex_id == "gaussian_learned_log_prob_grad":
        for xs, ms in [((1, 1), (1, 1)), ((3, 4), (3, 4)), ((2, 5), (3, 2, 5))]:
            x = rng.standard_normal(xs)
            inp = dict(mean=rng.standard_normal(ms), logvar=0.5 * rng.standard_normal(ms))
            cases.append((lambda i, x=x: np.sum(likelihoods.gaussian_learned_log_prob(
                x, i["mean"], i["logvar"])), inp,
                lambda fn, i, x=x: fn(x.copy(), i["mean"].copy(), i["logvar"].copy()),
                ("mean", "logvar")))
    else:
        raise LookupError(ex_id)
    return cases


def _grade_function(student, ex, rng):
    fn = _guard(getattr(student, ex.top))
    errors = []
    for f, inp, call, wrt in _function_cases(ex.id, rng):
        grads = _as_grads(call(fn, inp), [inp[w].shape for w in wrt], ex.top)
        with np.errstate(all="ignore"):
            for w, g in zip(wrt, grads):
                errors.append(gradcheck.rel_error(g, gradcheck.numerical_grad(lambda: f(inp),
                                                                              inp[w])))
    return _worst(errors)


_VAE_CASES = [
    dict(hidden=(5,), likelihood="bernoulli", activation="relu", k=1, beta=1.0, kl="closed"),
    dict(hidden=(), likelihood="gaussian", activation="tanh", c=0.5, k=2, beta=0.7, kl="closed"),
    dict(hidden=(4, 3), likelihood="gaussian_learned", activation="softplus", k=2, beta=1.0,
         kl="mc"),
]


def _grade_vae(student, ex, rng):
    from .. import model
    raw = getattr(getattr(student, ex.top), ex.method)
    # the other exercises' functions are the reference ones here, so one mistake in
    # (say) kl_normal_std_grad is not charged a second time on the VAE
    env = dict(raw.__globals__)
    for other in EXERCISES.values():
        if other.method is None:
            env[other.top] = getattr(importlib.import_module(f"numpyvae.{other.module}"),
                                     other.top)
    rebound = types.FunctionType(raw.__code__, env, raw.__name__, raw.__defaults__,
                                 raw.__closure__)
    ref = model.VAE

    def copy(self, dtype=None):
        new = ref.copy(self, dtype)
        new.__class__ = type(self)   # VAE.copy builds a plain VAE; keep the graded backward
        return new

    graded = type(ex.top, (ref,), {"backward": _guard(rebound), "copy": copy})
    errors = []
    for case in _VAE_CASES:
        case = dict(case)
        k, beta, kl = case.pop("k"), case.pop("beta"), case.pop("kl")
        vae = graded(x_dim=6, z_dim=3, seed=int(rng.integers(2**31)), **case)
        B = 4
        x = (_rand_x01(rng, (B, 6)) if case["likelihood"] == "bernoulli"
             else rng.standard_normal((B, 6)))
        eps = rng.standard_normal((k, B, 3))
        with np.errstate(all="ignore"):
            rep = gradcheck.check_model(vae, x, eps=eps, beta=beta, kl=kl,
                                        seed=int(rng.integers(2**31)))
        errors += [r[3] for r in rep.rows]
        # the q=(mu, logvar) path: the encoder's gradient must be zero
        vae.forward(x, eps=eps, q=(rng.standard_normal((B, 3)), rng.standard_normal((B, 3))))
        vae.flat_grads[...] = 1.0
        vae.backward()
        enc = np.concatenate([g.ravel() for n, g in vae.grads.items() if n.startswith("enc.")])
        errors.append(float(np.max(np.abs(enc))))
    return _worst(errors)


def _grade_one(student, ex, rng) -> ExerciseResult:
    if ex.method:
        holder = getattr(student, ex.top, None)
        if holder is None or not callable(getattr(holder, ex.method, None)):
            return ExerciseResult(ex.id, "error", None, f"the file has no {ex.qualname}")
    elif not callable(getattr(student, ex.top, None)):
        return ExerciseResult(ex.id, "error", None, f"the file has no function {ex.top}")
    try:
        if ex.module == "layers":
            err = _grade_layer(student, ex, rng)
        elif ex.module == "model":
            err = _grade_vae(student, ex, rng)
        else:
            err = _grade_function(student, ex, rng)
    except NotImplementedError:
        return ExerciseResult(ex.id, "not attempted", None, "")
    except _StudentError as exc:
        return ExerciseResult(ex.id, "error", None, str(exc))
    except _Mismatch as exc:
        return ExerciseResult(ex.id, "FAIL", None, str(exc))
    except Exception as exc:    # e.g. a student method that breaks the reference forward
        return ExerciseResult(ex.id, "error", None,
                              f"while checking: {type(exc).__name__}: {exc}")
    ok = err < gradcheck.PASS
    note = "" if ok else "gradient does not match finite differences"
    if ok and _calls_reference(student, ex):
        note = "passes, but the code names numpyvae itself: read it by hand"
    return ExerciseResult(ex.id, "pass" if ok else "FAIL", err, note)


def _calls_reference(student, ex) -> bool:
    """Whether the student's code for ``ex`` mentions numpyvae or the reference class.

    A cheap hint for the instructor, not a proof: the grader checks numbers, and
    a student who calls the reference implementation gets correct numbers.
    """
    holder = getattr(student, ex.top)
    fn = getattr(holder, ex.method) if ex.method else holder
    code = getattr(fn, "__code__", None)
    todo, names = [code] if code is not None else [], set()
    while todo:
        c = todo.pop()
        names.update(c.co_names + c.co_varnames)
        todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return any(n == "numpyvae" or n.startswith(("numpyvae.", "_Reference")) for n in names)


def grade(path, exercises=None, seed=0) -> GradeReport:
    """Grade the student's file: one row per exercise, numpyvae's checks in float64.

    exercises: ids to grade; None means the ``__exercises__`` list written into
    the file (all exercises if it has none). seed: the random shapes and values.
    An import failure marks every exercise "error".
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing student file, got {path}")
    report = GradeReport(str(path))
    try:
        student = _load_student(path)
    except NotImplementedError as exc:
        student, failure = None, f"importing the file raised NotImplementedError: {exc}"
    except BaseException as exc:   # SyntaxError, SystemExit, ... in student code
        if isinstance(exc, KeyboardInterrupt):
            raise
        student, failure = None, f"cannot import the file: {type(exc).__name__}: {exc}"
    if exercises is None:
        listed = getattr(student, "__exercises__", None) if student is not None else None
        exercises = [e for e in listed if e in EXERCISES] if isinstance(listed, (list, tuple)) \
            else None
        exercises = exercises or None
    chosen = _select(exercises)
    for ex in chosen:
        if student is None:
            report.results.append(ExerciseResult(ex.id, "error", None, failure))
            continue
        rng = np.random.default_rng([int(seed), zlib.crc32(ex.id.encode())])
        report.results.append(_grade_one(student, ex, rng))
    return report


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m numpyvae.teaching.assignments",
                                description="Make gradient exercises from numpyvae and grade them.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="write student_vae.py, README.md, assignment.json")
    m.add_argument("out_dir")
    m.add_argument("--exercises", default=None,
                   help=f"comma-separated ids (default all): {','.join(EXERCISES)}")
    m.add_argument("--hide-answers", action="store_true",
                   help="replace the stubs' docstrings (which state the derivative) by the task")
    m.add_argument("--solutions", action="store_true",
                   help="keep the reference bodies: an answer key for testing the grader")
    g = sub.add_parser("grade", help="grade a student's file")
    g.add_argument("path")
    g.add_argument("--exercises", default=None, help="comma-separated ids to grade")
    g.add_argument("--manifest", default=None,
                   help="assignment.json from the instructor's copy: grade exactly its exercises")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def main(argv=None) -> int:
    """Entry point: 0 when made / when every graded exercise passes, 1 otherwise, 2 on bad input."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:     # --help (0) or a usage error (2): return, do not exit
        return int(exc.code or 0)
    try:
        if args.command == "make":
            path = make_assignment(args.out_dir, args.exercises, solutions=args.solutions,
                                   hide_answers=args.hide_answers)
            print(f"wrote {path} and {path.parent / 'README.md'}")
            return 0
        exercises = args.exercises
        if args.manifest:
            if exercises:
                raise ValueError("give --exercises or --manifest, not both")
            try:
                exercises = json.loads(Path(args.manifest).read_text(encoding="utf-8"))["exercises"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"manifest: cannot read an exercise list from {args.manifest} "
                                 f"({type(exc).__name__}: {exc})") from None
        report = grade(args.path, exercises, seed=args.seed)
    except ValueError as exc:
        print(f"numpyvae.teaching.assignments: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
