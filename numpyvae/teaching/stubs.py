"""Cut numpyvae's source into a student kit.

``make_assignment(out_dir)`` writes a self-contained kit:

* ``student_vae.py``: copies of the chosen functions and classes, cut out of the
  real source with ``ast`` (forward passes, helpers and comments as they are),
  each exercise's body replaced by ``raise NotImplementedError``; for
  ``vae_backward`` a student ``VAE`` class holding everything ``backward`` needs
  (the forward, the cache layout, the attribute map), not a subclass of numpyvae's;
* ``README.md`` for the student, ``assignment.json`` (the manifest: exercises,
  points, options, seeds, package version), ``cases.json`` (the visible cases);
* ``check_my_work.py``: the local self-check (a copy of ``sandbox.py``: NumPy only);
* ``notes/``: the derivation notes the exercises name, with the graded results hidden;
* with ``notebook=True``, ``student_vae.ipynb``: the same exercises as notebook cells,
  each followed by an inline gradient check.
"""
from __future__ import annotations

import ast
import importlib
import json
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np

from .. import gradcheck
from .exercises import (EXERCISES, VAE_CONTEXT, VAE_SETTINGS, build_cases, select,
                        vae_configs)

__all__ = ["make_assignment", "build_student_file", "hide_note_answers", "make_notebook",
           "package_version", "STUDENT_FILE", "MANIFEST_FILE", "NOTES_DIR"]

STUDENT_FILE = "student_vae.py"
MANIFEST_FILE = "assignment.json"
NOTEBOOK_FILE = "student_vae.ipynb"
NOTES_DIR = Path(__file__).resolve().parent.parent.parent / "derivations"
_MODULE_ORDER = ("layers", "reparam", "kl", "likelihoods", "model")


def package_version() -> str:
    from .. import __version__
    return __version__


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


def _stub_edits(src: _Source, fn, number: int, ex, hide: bool, derivs) -> list:
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


def _exercise_derivations(src: _Source, ex) -> list:
    node = src.defs[ex.top]
    if ex.method:
        found = _derivations(ast.get_docstring(_find_method(node, ex.method)))
        if found:
            return found
    return _derivations(ast.get_docstring(node))


# --------------------------------------------------------------------------- the student's VAE
_VAE_TEMPLATE = '''
class Terms:
    """What forward() returns: loss (the number backward() differentiates), recon and kl
    (batch means, in nats)."""

    def __init__(self, loss, recon, kl):
        self.loss, self.recon, self.kl = loss, recon, kl


class VAE:
    """A Gaussian-encoder VAE with everything backward() needs in this file.

    The maps (the same as numpyvae's VAE):
      encoder  x (B, D) -> self.enc (MLP trunk: Linear + activation per hidden size) -> h
               h -> self.enc_mu (Linear) -> mu (B, Z);  h -> self.enc_logvar (Linear) -> logvar
      sample   z = mu + exp(logvar / 2) * eps, eps (K, B, Z)
      decoder  z as (K*B, Z) -> self.dec (MLP trunk) -> h -> self.dec_out (Linear) -> the first
               output (Bernoulli logits or the Gaussian mean); with
               likelihood="gaussian_learned" also h -> self.dec_logvar (Linear) -> log-variance
      loss     mean over the batch of  -(1/K) sum_k log p(x|z_k) + beta * KL
    hidden=(): no trunks. enc_mu and enc_logvar then read x itself: they are first layers
      (input_grad is False) and their backward() returns None, since nobody needs dL/dx.
      Otherwise only the encoder trunk's first Linear has input_grad False.

    Attribute map: params[name] and grads[name] are views into flat_params / flat_grads,
      and every Linear's W, b, dW, db ARE those views, so a Linear.backward that writes
      into self.dW / self.db fills grads:
        "enc.{i}.W", "enc.{i}.b" -> self.enc.linears[i]
        "enc.mu.W", "enc.mu.b" -> self.enc_mu;  "enc.logvar.*" -> self.enc_logvar
        "dec.{i}.*" -> self.dec.linears[i];  "dec.out.*" -> self.dec_out
        "dec.logvar.*" -> self.dec_logvar (gaussian_learned only)
      The encoder's entries come first: flat_grads[self._enc_slice] is the whole encoder.
    self.lik: the likelihood object; self.lik.grad(x, *outs) is d log p(x|z) / d outputs.

    forward() keeps in self._cache (a dict):
      x (B, D); mu, logvar (B, Z); eps (K, B, Z); outs: tuple of decoder outputs, each
      (K, B, D); beta (float); kl: "closed" or "mc"; mc: None, or for kl="mc" the tuple
      kl_monte_carlo(z, mu, logvar) = (kl (K, B), dz, dmu, dlogvar, each (K, B, Z));
      encoder: False when forward was given q=(mu, logvar) (then the encoder took no part).
    """

    def __init__(self, x_dim, z_dim, hidden=(400,), likelihood="bernoulli",
                 activation="relu", c=1.0, seed=0, dtype=np.float64):
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.likelihood_name, self.activation, self.c, self.seed = likelihood, activation, c, seed
        self.dtype = np.dtype(dtype)
        self.lik = make_likelihood(likelihood, c)
        rng = np.random.default_rng(seed)
        h_enc = hidden[-1] if hidden else x_dim
        h_dec = hidden[0] if hidden else z_dim
        self.enc = MLP((x_dim,) + hidden, activation, rng, self.dtype)
        self.enc_mu = Linear(h_enc, z_dim, rng, "glorot", self.dtype)
        self.enc_logvar = Linear(h_enc, z_dim, rng, "glorot", self.dtype)
        self.dec = MLP((z_dim,) + hidden[::-1], activation, rng, self.dtype)
        self.dec_out = Linear(h_dec, x_dim, rng, "glorot", self.dtype)
        self.dec_logvar = (Linear(h_dec, x_dim, rng, "glorot", self.dtype)
                           if likelihood == "gaussian_learned" else None)
        for lin in (self.enc.linears[:1] or [self.enc_mu, self.enc_logvar]):
            lin.input_grad = False      # a first layer: nobody needs dL/dx
        self._bind_flat_buffers()
        self._cache = None
        self.dmu = self.dlogvar = None

    def _named_linears(self):
        named = [(f"enc.{i}", lin) for i, lin in enumerate(self.enc.linears)]
        named += [("enc.mu", self.enc_mu), ("enc.logvar", self.enc_logvar)]
        named += [(f"dec.{i}", lin) for i, lin in enumerate(self.dec.linears)]
        named += [("dec.out", self.dec_out)]
        if self.dec_logvar is not None:
            named += [("dec.logvar", self.dec_logvar)]
        return named

    def _bind_flat_buffers(self):
        named = self._named_linears()
        total = sum(lin.W.size + lin.b.size for _, lin in named)
        self.flat_params = np.empty(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.params, self.grads = {}, {}
        o = 0
        for name, lin in named:
            for p in ("W", "b"):
                arr = getattr(lin, p)
                view = self.flat_params[o:o + arr.size].reshape(arr.shape)
                view[...] = arr
                gview = self.flat_grads[o:o + arr.size].reshape(arr.shape)
                setattr(lin, p, view)
                setattr(lin, "d" + p, gview)
                self.params[f"{name}.{p}"] = view
                self.grads[f"{name}.{p}"] = gview
                o += arr.size
        self._enc_slice = slice(0, sum(v.size for n, v in self.params.items()
                                       if n.startswith("enc.")))

    def copy(self, dtype=None):
        """An independent copy of this model (its own class), optionally in ``dtype``."""
        new = type(self)(self.x_dim, self.z_dim, self.hidden, self.likelihood_name,
                         self.activation, self.c, self.seed,
                         self.dtype if dtype is None else dtype)
        new.flat_params[...] = self.flat_params
        return new

    def _encode(self, x):
        h = self.enc.forward(x)
        return self.enc_mu.forward(h), self.enc_logvar.forward(h)

    def _decode_flat(self, zf):
        h = self.dec.forward(zf)
        outs = (self.dec_out.forward(h),)
        if self.dec_logvar is not None:
            outs += (self.dec_logvar.forward(h),)
        return outs

    def _decode_backward(self, douts):
        """d loss / d decoder outputs (each (K*B, D)) -> d loss / dz (K*B, Z)."""
        dh = self.dec_out.backward(douts[0])
        if self.dec_logvar is not None:
            dh = dh + self.dec_logvar.backward(douts[1])
        return self.dec.backward(dh)

    def forward(self, x, eps=None, k=1, beta=1.0, kl="closed", q=None):
        """The loss of x (B, D) with noise eps (K, B, Z) (drawn when None); keeps self._cache.

        q=(mu, logvar) replaces the encoder's output (a decoder-only objective).
        """
        x = np.asarray(x, dtype=self.dtype)
        B = x.shape[0]
        if eps is None:
            eps = sample_eps(np.random.default_rng(), k, B, self.z_dim, self.dtype)
        eps = np.asarray(eps, dtype=self.dtype)
        K = eps.shape[0]
        mu, logvar = self._encode(x) if q is None else (np.asarray(q[0], dtype=self.dtype),
                                                       np.asarray(q[1], dtype=self.dtype))
        z = reparameterize(mu, logvar, eps)                       # z = mu + sigma * eps
        outs = tuple(o.reshape(K, B, self.x_dim)
                     for o in self._decode_flat(z.reshape(K * B, self.z_dim)))
        log_px_z = self.lik.log_prob(x, *outs)                    # (K, B)
        recon = -log_px_z.mean(axis=0)                            # (B,)
        mc = None
        if kl == "closed":
            kl_pe = kl_normal_std(mu, logvar)
        else:
            mc = kl_monte_carlo(z, mu, logvar)
            kl_pe = mc[0].mean(axis=0)
        loss = float(np.mean(recon + beta * kl_pe))
        self._cache = dict(x=x, mu=mu, logvar=logvar, eps=eps, outs=outs, beta=float(beta),
                           kl=kl, mc=mc, encoder=q is None)
        return Terms(loss, float(recon.mean()), float(kl_pe.mean()))

'''


def _reference_backward(number, ex, solutions, hide):
    """The student VAE's backward(): the reference body (solutions) or a stub."""
    src = _Source("model")
    fn = _find_method(src.defs["VAE"], "backward")
    derivs = _exercise_derivations(src, ex)
    a, b = src.segment(fn)
    edits = [] if solutions else _stub_edits(src, fn, number, ex, hide, derivs)
    if solutions and hide:
        doc = _docstring_node(fn)
        edits = [(doc.lineno, doc.end_lineno, _quote_doc(
            textwrap.fill(f"Exercise {number}: {ex.task}", width=80) + "\n\n" + "\n".join(derivs),
            " " * doc.col_offset))]
    return _apply(src.lines[a - 1:b], a, edits)


# --------------------------------------------------------------------------- the student file
def _build(exercises, solutions: bool, hide: bool):
    """([(chunk text, exercise id or None)], imports, listing) for the student file."""
    numbered = list(enumerate(exercises, start=1))
    vae = [(n, ex) for n, ex in numbered if ex.kind == "vae"]
    # the core modules in order, then any other module a function or layer exercise lives in
    # (model.py's free functions, vqvae.py); the VAE exercise's model code is a template
    modules = list(_MODULE_ORDER[:-1]) + list(dict.fromkeys(
        ex.module for ex in exercises if ex.kind != "vae" and ex.module not in _MODULE_ORDER[:-1]))
    sources = {m: _Source(m) for m in modules + ["model"]}
    chunks, defined, imports, listing = [], {}, set(), []
    chosen_ids = {ex.id for ex in exercises}
    for module in modules:
        src = sources[module]
        mine = [(n, ex) for n, ex in numbered if ex.module == module and ex.kind != "vae"]
        extra = list(VAE_CONTEXT.get(module, ())) if vae else []
        if not mine and not extra:
            continue
        wanted = src.closure([ex.top for _, ex in mine] + [c for _, ex in mine for c in ex.context]
                             + extra)
        nodes = sorted({id(src.defs[n]): src.defs[n] for n in wanted}.values(),
                       key=lambda nd: nd.lineno)
        for node in nodes:
            a, b = src.segment(node)
            names = [node.name] if hasattr(node, "name") else [
                t.id for t in node.targets if isinstance(t, ast.Name)]
            edits, owner = [], None
            for n, ex in mine:
                if ex.top not in names:
                    continue
                owner = ex.id
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
            if not solutions:
                given = _rewrite_given(module, names, text, chosen_ids)
                edits, text = edits or (given != text), given
            key = _shape_of(node) if not edits else text
            clash = [n for n in names if n in defined and defined[n] != key]
            if clash:
                raise RuntimeError(f"two different definitions of {clash} in the student file")
            if all(n in defined for n in names):
                continue     # the same helper (e.g. _sigmoid) from a second module
            for n in names:
                defined[n] = key
            chunks.append((text, owner))
            for used in _used_names(node):
                if used in src.imports and used not in wanted:
                    imports.add(src.imports[used])
    chunks = _inline_package_imports(chunks, defined, imports)
    for n, ex in vae:
        listing.append((n, ex, _exercise_derivations(sources["model"], ex), ex.qualname))
        chunks.append((_VAE_TEMPLATE.strip("\n") + "\n\n" + _reference_backward(
            n, ex, solutions, hide), ex.id))
    return chunks, imports, listing


# Given code that would hand out an exercise's answer, rewritten in the kit when that
# exercise is chosen: (module, name) -> (exercise id, [(old text, new text)]). Each old text
# must be found (a changed source fails loudly here, and the kit's answer test catches a
# new leak).
_GIVEN_LEAKS = {
    # LeakyReLU with slope 0 is ReLU: its backward runs through the student's ReLU instead
    ("layers", "LeakyReLU"): ("relu_backward", [
        ('    """``y = x`` for x > 0, ``slope * x`` otherwise; ``dx = dy * (1 or slope)``.',
         '    """``y = x`` for x > 0, ``slope * x`` otherwise (its backward uses your ReLU).'),
        ("        self.pos = x > 0\n        return np.where(self.pos, x, self.slope * x)",
         "        self.relu = ReLU()\n        self.relu.forward(x)\n"
         "        return np.where(x > 0, x, self.slope * x)"),
        ("        return np.where(self.pos, dy, self.slope * dy)",
         "        return self.slope * dy + (1 - self.slope) * self.relu.backward(dy)"),
    ]),
    # the Monte Carlo KL's partials at fixed z are those of a Gaussian log-density: the
    # learned-variance likelihood's gradient. The kit's version calls the student's.
    ("kl", "kl_monte_carlo"): ("gaussian_learned_log_prob_grad", [
        ("    inv_var = np.exp(-logvar)\n"
         "    r = (z - mu) * inv_var                   # (z - mu) / sigma^2\n"
         "    dz = -r + z                              # d/dz [log q - log p]\n"
         "    dmu = r                                  # d log q / dmu at fixed z\n"
         "    dlogvar = -0.5 + 0.5 * (z - mu) * r      # d log q / dlogvar at fixed z\n",
         "    # log q(z|x) is a Gaussian log-density of z: its partials at fixed z are your\n"
         "    # gaussian_learned_log_prob_grad's, and its z-gradient is minus its mu-gradient\n"
         "    dmu, dlogvar = gaussian_learned_log_prob_grad(\n"
         "        z, np.broadcast_to(mu, z.shape).copy(), np.broadcast_to(logvar, z.shape).copy())\n"
         "    dz = -dmu + z                            # d/dz [log q - log p]\n"),
    ]),
}


def _rewrite_given(module, names, text, chosen_ids):
    """``text`` with the answers it would hand out replaced (``_GIVEN_LEAKS``)."""
    for name in names:
        leak = _GIVEN_LEAKS.get((module, name))
        if leak is None or leak[0] not in chosen_ids:
            continue
        for old, new in leak[1]:
            if old not in text:
                raise RuntimeError(f"{module}.{name} changed: the kit cannot keep the answer to "
                                   f"{leak[0]} out of it (update _GIVEN_LEAKS in stubs.py)")
            text = text.replace(old, new)
    return text


def _inline_package_imports(chunks, defined, imports):
    """Copy what the chosen code imports from other numpyvae modules into the file itself.

    The core shares a few helpers across modules (``LOG_2PI`` and ``log_normal_diag`` live in
    kl.py, ``_sigmoid`` in layers.py, ``positive_int`` in _validate.py); the student file must
    not import them from the installed package, so their definitions (and what those use)
    are placed before the code that needs them. Repeats until nothing from numpyvae is left.
    """
    head, sources = [], {}
    while True:
        pending = sorted((i for i in imports if not isinstance(i, str)), key=str)
        if not pending:
            return head + chunks
        for item in pending:
            imports.discard(item)
            module, name, alias = item
            if not module.startswith("numpyvae."):
                raise RuntimeError(f"the student file would import {name} from {module}")
            short = module[len("numpyvae."):]
            src = sources.setdefault(short, _Source(short))
            if name not in src.defs:
                raise RuntimeError(f"the student file needs {module}.{name}, which is not a "
                                   f"top-level definition there")
            wanted = src.closure([name])
            for node in sorted({id(src.defs[n]): src.defs[n] for n in wanted}.values(),
                               key=lambda nd: nd.lineno):
                names = [node.name] if hasattr(node, "name") else [
                    t.id for t in node.targets if isinstance(t, ast.Name)]
                key = _shape_of(node)
                if all(n in defined for n in names):
                    continue
                a, b = src.segment(node)
                for n in names:
                    defined[n] = key
                head.append(("".join(src.lines[a - 1:b]), None))
                for used in _used_names(node):
                    if used in src.imports and used not in wanted:
                        imports.add(src.imports[used])
            if alias and alias != name:
                head.append((f"{alias} = {name}\n", None))


def _header(imports, ids) -> str:
    plain = sorted({i for i in imports if isinstance(i, str)} | {"import numpy as np"})
    head = ['"""Your exercises: fill in every body that raises NotImplementedError.\n',
            "\n",
            "Keep the names and the arguments. The forward passes are not graded: the grader\n",
            "compares your gradients with finite differences of numpyvae's reference forward,\n",
            "so only your gradients count. Everything you need is in this file and in notes/.\n",
            "Check yourself with:  python check_my_work.py\n", '"""\n',
            "from __future__ import annotations\n\n"]
    head += [p + "\n" for p in plain]
    head.append(f"\n__exercises__ = {json.dumps(ids)}\n")
    return "".join(head)


def build_student_file(exercises=None, solutions=False, hide_answers=True):
    """(file text, [(chunk text, exercise id or None)], header, listing)."""
    chosen = select(exercises)
    chunks, imports, listing = _build(chosen, bool(solutions), bool(hide_answers))
    if any(not isinstance(i, str) for i in imports):
        raise RuntimeError(f"the student file would import from numpyvae: {imports}")
    chunks = [(_kit_paths(t), o) for t, o in chunks]
    header = _header(imports, [e.id for e in chosen])
    text = header + "".join("\n\n" + c for c, _ in chunks)
    compile(text, STUDENT_FILE, "exec")   # a generator bug should fail here, not in class
    return text, chunks, header, sorted(listing, key=lambda r: r[0])


def _top_level_names(text) -> set:
    """The names a student file defines at its top level."""
    names = set()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _kit_paths(text):
    return text.replace("Derivation: derivations/", "Derivation: notes/")


# --------------------------------------------------------------------------- notes
_OPEN = re.compile(r"^\s*(#\s*)?<!--\s*answer:\s*([\w\s,]+?)\s*-->\s*$")
_CLOSE = re.compile(r"^\s*(#\s*)?<!--\s*/answer\s*-->\s*$")


def hide_note_answers(text, exercises, name="note", tags=None, answer_names=None, also=()):
    """Hide the graded results of ``exercises`` in a note's Markdown text.

    Marked results (``<!-- answer: ID -->`` ... ``<!-- /answer -->``, or the same as
    ``#`` comments inside a code block) become a placeholder; markers of other
    exercises are removed and their text kept. An exercise with no marker in the
    note falls back to hiding the display equation carrying one of ``tags[id]``
    (e.g. "4.2") and the lines that assign to ``answer_names[id]`` in code.
    also: further chosen exercises whose marked results are hidden here too (a note may
    state another exercise's answer on the way), without the fallback.
    Returns (text, {exercise id: "markers" | "heuristic" | "none"}).
    """
    ids = set(exercises) | set(also)
    lines = text.splitlines(keepends=True)
    out, how, i = [], {e: "none" for e in exercises}, 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            if _CLOSE.match(lines[i]):
                raise ValueError(f"{name}: line {i + 1} closes an answer that was never opened")
            out.append(lines[i])
            i += 1
            continue
        marked = {e.strip() for e in m.group(2).split(",") if e.strip()}
        j = i + 1
        while j < len(lines) and not _CLOSE.match(lines[j]):
            if _OPEN.match(lines[j]):
                raise ValueError(f"{name}: line {j + 1} opens an answer inside another")
            j += 1
        if j == len(lines):
            raise ValueError(f"{name}: the answer opened on line {i + 1} is never closed "
                             "(<!-- /answer -->)")
        hit = sorted(marked & ids)
        if hit:
            for e in hit:
                if e in how:
                    how[e] = "markers"
            label = ", ".join(hit)
            out.append(f"# (hidden: the result of exercise {label}; derive it yourself)\n"
                       if m.group(1) else
                       f"*[Hidden: the result of exercise {label}. Derive it yourself.]*\n")
        else:
            out.extend(lines[i + 1:j])
        i = j + 1
    text = "".join(out)
    fallback = [e for e in how if how[e] == "none"]
    if fallback:
        text, found = _hide_heuristic(text, fallback, tags or {}, answer_names or {})
        for e in found:
            how[e] = "heuristic"
    return text, how


def _hide_heuristic(text, ids, tags, answer_names):
    lines = text.splitlines(keepends=True)
    hide, found, in_code = set(), set(), False
    for e in ids:
        names = [re.escape(n) for n in answer_names.get(e, ())]
        code_re = re.compile(rf"^\s*({'|'.join(names)})\b[\w\s,\[\].]*[-+*/]?=(?!=)") \
            if names else None
        prose_re = re.compile(rf"`\s*({'|'.join(names)})\s*=[^`]*`") if names else None
        in_code = False
        for k, ln in enumerate(lines):
            if ln.lstrip().startswith("```"):
                in_code = not in_code
                continue
            if in_code and code_re is not None and code_re.match(ln):
                hide.add(k), found.add(e)
            elif not in_code and prose_re is not None and prose_re.search(ln):
                hide.add(k), found.add(e)
        for tag in tags.get(e, ()):
            for k, ln in enumerate(lines):
                if f"\\tag{{{tag}}}" in ln:
                    a = k
                    while a > 0 and "$$" not in lines[a]:
                        a -= 1
                    b = k
                    while b < len(lines) - 1 and "$$" not in lines[b]:
                        b += 1
                    hide.update(range(a, b + 1))
                    found.add(e)
    out = []
    for k, ln in enumerate(lines):
        if k in hide:
            if k - 1 in hide:
                continue
            code = _inside_code(lines, k)
            out.append("# (hidden: derive this yourself)\n" if code
                       else "*[Hidden: a graded result. Derive it yourself.]*\n")
        else:
            out.append(ln)
    return "".join(out), found


def _inside_code(lines, k):
    return sum(ln.lstrip().startswith("```") for ln in lines[:k]) % 2 == 1


def _exercise_notes(listing):
    """{note file name: [(exercise id, tag)]} from the exercises' Derivation lines."""
    notes = {}
    for _, ex, derivs, _ in listing:
        for d in derivs:
            m = re.search(r"derivations/(\S+\.md), eq\. \(([\d.]+)\)", d)
            if m:
                notes.setdefault(m.group(1), []).append((ex.id, m.group(2)))
    return notes


SOLUTIONS_NOTE = "solutions.md"     # the instructors' worked answers: never in a kit
_SOL_OPEN = re.compile(r"^\s*<!--\s*solutions\s*-->\s*$")
_SOL_CLOSE = re.compile(r"^\s*<!--\s*/solutions\s*-->\s*$")


def strip_solutions(text):
    """A note without its exercise solutions: blocks between ``<!-- solutions -->`` and
    ``<!-- /solutions -->``, ``<details>`` whose summary says solution or answer, sections
    headed "Solutions", and links to solutions.md (their text kept)."""
    lines, out, i = text.splitlines(keepends=True), [], 0
    while i < len(lines):
        ln = lines[i]
        head = re.match(r"^(#+)\s+(.*)$", ln)
        if _SOL_OPEN.match(ln):
            while i < len(lines) and not _SOL_CLOSE.match(lines[i]):
                i += 1
            i += 1
            continue
        if ln.lstrip().startswith("<details") and re.search(
                r"(?i)solution|answer", "".join(lines[i:i + 3])):
            while i < len(lines) and "</details>" not in lines[i]:
                i += 1
            i += 1
            continue
        if head and re.search(r"(?i)\bsolutions?\b", head.group(2)):
            level = len(head.group(1))
            i += 1
            while i < len(lines) and not (re.match(r"^(#+)\s", lines[i]) and len(
                    re.match(r"^(#+)", lines[i]).group(1)) <= level):
                i += 1
            continue
        ln = re.sub(r"\[([^\]]*)\]\((?:\./)?solutions\.md[^)]*\)", r"\1", ln)
        # a sentence naming the file itself (the worked answers are not the students')
        out.append(re.sub(r"\s*[^.\n]*\bsolutions\.md\b[^.\n]*\.(?=\s|$)", "", ln))
        i += 1
    return "".join(out)


def _kit_check_blocks(text, student_names, exercises):
    """The note's Python blocks made to run on the student's own file, not numpyvae: module
    paths shortened to the file's names, gradcheck's helpers taken from check_my_work.py. A
    block that needs more of numpyvae (the full VAE, the optimisers, the theory) becomes a
    check of the note's exercises in this kit."""
    def rewrite(code):
        code = re.sub(r"^([ \t]*)import numpy as np, numpyvae as nv[ \t]*$",
                      r"\1import numpy as np\n\1import student_vae as nv                    "
                      r"# your file\n\1from check_my_work import numerical, rel_error",
                      code, flags=re.M)
        code = code.replace("nv.gradcheck.numerical_grad", "numerical")
        code = code.replace("nv.gradcheck.rel_error", "rel_error")
        code = re.sub(r"\bnv\.[a-z_]+\.(\w+)",
                      lambda m: f"nv.{m.group(1)}" if m.group(1) in student_names else m.group(0),
                      code)

        def imp(m):
            names = [n.strip() for n in m.group(2).split(",")]
            return (f"{m.group(1)}from student_vae import {', '.join(names)}"
                    if all(n in student_names for n in names) else m.group(0))
        code = re.sub(r"^(\s*)from numpyvae\.[\w.]+ import ([\w, ]+)$", imp, code, flags=re.M)
        used = set(re.findall(r"\bnv\.(\w+)", code))
        if "numpyvae" in code or "VAE" in used or not used <= set(student_names):
            checks = "".join(f"check({e!r}, student_vae)\n" for e in exercises)
            return ("# This note's check runs numpyvae itself, which the kit leaves out.\n"
                    "# Check your own code instead (from the kit's folder):\n"
                    "import student_vae                          # your file\n"
                    + ("from check_my_work import check\n\n" + checks if checks else ""))
        return code

    out, lines, i = [], text.splitlines(keepends=True), 0
    while i < len(lines):
        out.append(lines[i])
        if re.match(r"^\s*```\s*python\s*$", lines[i]):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            code = "".join(lines[i + 1:j])
            new = rewrite(code) if "numpyvae" in code else code
            out.append(new if new.endswith("\n") else new + "\n")
            i = j
            continue
        i += 1
    return "".join(out)


def _copy_notes(listing, out, hide, notes_dir, also=(), student_names=()):
    """Write the named notes into out/notes; -> {note: {exercise: how}} (None if no notes).

    also: further note file names the student file cites (copied, markers removed).
    """
    notes = _exercise_notes(listing)
    chosen = {ex.id for _, ex, _, _ in listing}
    for name in also:
        notes.setdefault(name, [])
    notes.pop(SOLUTIONS_NOTE, None)
    report = {}
    notes_dir = Path(notes_dir) if notes_dir else NOTES_DIR
    if not notes_dir.is_dir():
        return None
    (out / "notes").mkdir(exist_ok=True)
    for note, pairs in sorted(notes.items()):
        src = notes_dir / note
        if not src.is_file():
            report[note] = {e: "missing" for e, _ in pairs}
            continue
        text = src.read_text(encoding="utf-8")
        ids = sorted({e for e, _ in pairs})
        if hide:
            tags = {e: [t for e2, t in pairs if e2 == e] for e in ids}
            names = {e: EXERCISES[e].answer_names for e in ids}
            text, how = hide_note_answers(text, ids, note, tags, names, also=sorted(chosen))
            text = _kit_check_blocks(strip_solutions(text), student_names, ids)
        else:
            text, how = hide_note_answers(text, [], note)     # markers removed, text kept
            how = {e: "shown" for e in ids}
        (out / "notes" / note).write_text(text, encoding="utf-8")
        report[note] = how
    return report


# --------------------------------------------------------------------------- cases, README, notebook
def _cases_json(chosen, seed, file_name, vae_settings=None):
    """The visible cases as JSON (small arrays as lists) for the kit's self-check."""
    table = {"file": file_name, "exercises": {}}
    for ex in chosen:
        entry = {"id": ex.id, "kind": ex.kind, "top": ex.top, "method": ex.method,
                 "function": None, "cases": []}
        if ex.function is not None:
            f = ex.function
            entry["function"] = {"forward": f.forward, "args": list(f.args), "call": list(f.call),
                                 "wrt": list(f.wrt), "outputs": list(f.outputs),
                                 "consts": list(f.consts), "weighted": f.weighted}
        for meta, arrays in build_cases(ex, seed, vae_settings=vae_settings):
            entry["cases"].append({"meta": meta, "arrays": {k: np.asarray(v).tolist()
                                                            for k, v in arrays.items()}})
        table["exercises"][ex.id] = entry
    return table


def _readme(listing, points, notes_report) -> str:
    lines = ["# VAE gradients: your exercises", "",
             f"Everything you write goes into `{STUDENT_FILE}` (or, if you prefer, the notebook",
             f"`{NOTEBOOK_FILE}` when it is in this folder). Each exercise is a function or a",
             "method whose body is `raise NotImplementedError(...)`: replace that line with your",
             "code (keep the name and the arguments). The forward passes are there and are not",
             "graded: the grader compares your gradients with finite differences of numpyvae's",
             "own forward pass, in float64, on the cases below and on hidden ones with other",
             f"shapes, and a gradient passes when its relative error is below {gradcheck.PASS:.0e}",
             "(relative error = max|yours - numeric| / max(max|yours|, max|numeric|)).", "",
             "| # | exercise | where in the file | points | read first |",
             "|---|---|---|---|---|"]
    for n, ex, derivs, where in listing:
        read = "; ".join(d.replace("Derivation:", "").strip().replace("derivations/", "notes/")
                         for d in derivs) or "-"
        lines.append(f"| {n} | `{ex.id}` | `{where}` | {points[ex.id]:g} | {read} |")
    lines += ["", "## What each exercise asks", ""]
    for n, ex, _derivs, where in listing:
        lines += [f"**{n}. `{ex.id}`** (`{where}`). {ex.task}", ""]
    lines += ["## What you may import", "",
              "NumPy and Python's standard library, nothing else. The grader has no SciPy,",
              "PyTorch, JAX or autograd: a file that imports them cannot be graded, and libraries",
              "that compute derivatives for you are reported to the instructor. Nor does it have",
              "numpyvae: a graded function that does not come from your file scores 0.", "",
              "## Handing it in", "",
              f"Upload `{STUDENT_FILE}`, or the notebook `{NOTEBOOK_FILE}`; a renamed copy",
              "(`student_vae (1).py`) or one inside a folder is found. When both the file and",
              "the notebook are uploaded, the one with more exercises written is graded, and",
              "the report says which. In a notebook only the definitions count: magics,",
              "`!pip` lines, plots and your own check cells are left out when it is graded.", ""]
    lines += ["## Checking your work", "",
              "From this folder (needs only NumPy):", "",
              "```", "python check_my_work.py", "python check_my_work.py student_vae.py "
              "relu_backward      # one exercise", "```", "",
              "It prints, for every visible case and every gradient, the relative error of your",
              "gradient against finite differences of *your* forward passes. The grader uses the",
              "reference forward and hidden cases as well, so keep the forward passes unchanged.",
              "Your own code only: a graded function or class whose code does not come from your",
              "file (imported, inherited or assigned from a library) scores 0.", ""]
    if notes_report:
        lines += ["## Notes", "",
                  "`notes/` holds the derivations to read. The graded results are hidden: derive",
                  "them yourself.", ""]
    return "\n".join(lines)


def make_notebook(header, chunks, listing, path) -> Path:
    """Write a Jupyter notebook (nbformat 4): per exercise its task, the cell to fill in,
    and an inline gradient check of the student's own code."""
    tasks = {ex.id: (n, ex, derivs) for n, ex, derivs, _ in listing}

    def md(text):
        return {"cell_type": "markdown", "metadata": {}, "source": text}

    def code(text, tags=()):
        return {"cell_type": "code", "metadata": {"tags": list(tags)} if tags else {},
                "execution_count": None, "outputs": [], "source": text}

    cells = [md("# VAE gradients\n\nRun the cells in order. Fill in every cell that raises "
                "`NotImplementedError`; the cell after it checks your gradient against finite "
                "differences and prints the relative error (it should be below "
                f"{gradcheck.PASS:.0e}). Keep `check_my_work.py` and `cases.json` next to this "
                "notebook. The derivations are in `notes/`."),
             code(header.split('"""\n', 2)[-1].strip() + "\n", tags=("setup",))]
    pending = []
    for text, owner in chunks:
        if owner is None:
            pending.append(text)
            continue
        if pending:
            cells.append(md("Given code (forward passes and helpers): run it, do not change it."))
            cells.append(code("\n\n".join(pending), tags=("setup",)))
            pending = []
        n, ex, derivs = tasks[owner]
        read = "; ".join(d.replace("Derivation:", "").strip().replace("derivations/", "notes/")
                         for d in derivs)
        cells.append(md(f"## Exercise {n}: `{ex.id}`\n\n{ex.task}\n\nRead first: {read}"))
        cells.append(code(text, tags=("exercise",)))
        cells.append(code("from check_my_work import check\n"
                          f"check({ex.id!r}, globals())", tags=("numpyvae-check",)))
    if pending:
        cells.append(code("\n\n".join(pending), tags=("setup",)))
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"},
                                       "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    for i, c in enumerate(cells):
        c["id"] = f"cell-{i}"
    path = Path(path)
    path.write_text(json.dumps(nb, indent=1) + "\n", encoding="utf-8")
    return path


def _measured(out, hide, solutions) -> dict:
    """What the kit hands out, measured (``leaks.find_answers``): {"hidden": bool,
    "found": {exercise: [how]}} for a kit with hidden answers, else a plain statement."""
    if solutions:
        return {"hidden": False, "found": "an answer key (solutions=True)"}
    if not hide:
        return {"hidden": False, "found": "shown (show_answers=True)"}
    from .leaks import find_answers
    found = {e: how for e, how in find_answers(out).items() if how}
    return {"hidden": not found, "found": found,
            "measured": "each exercise against every call of the kit's given code and every "
                        "expression of its notes, on the visible cases"}


# --------------------------------------------------------------------------- make
def make_assignment(out_dir, exercises=None, solutions=False, hide_answers=True, points=None,
                    partial_credit=False, seed=0, hidden_cases=True, notebook=False,
                    force=False, notes_dir=None, timeout=10.0, memory_mb=2048,
                    vae_settings=None) -> Path:
    """Write the student's kit into ``out_dir``; returns the path of the student file.

    exercises: ids (default all), numbered in this order. solutions=True keeps the
    reference bodies (an answer key that must grade full marks). hide_answers
    (default True): stub docstrings state the task, not the derivative, and the
    notes' graded results are hidden. points: {id: points}. partial_credit, seed,
    hidden_cases, timeout, memory_mb: recorded in the manifest for grading. vae_settings:
    the likelihood and activation of each VAE case (``exercises.vae_configs``), recorded.
    notebook=True also writes student_vae.ipynb. An existing non-empty ``out_dir``
    is refused unless force=True.
    """
    chosen = select(exercises)
    vae_configs(vae_settings)          # bad settings are bad input, before anything is written
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir must be a directory, got the file {out}")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f"out_dir {out} already exists and is not empty; pass --force "
                         "(force=True) to overwrite the kit in it")
    if notes_dir is not None and not Path(notes_dir).is_dir():
        raise ValueError(f"notes_dir must be a folder of derivation notes, got {notes_dir}")
    pts = {ex.id: float(ex.points) for ex in chosen}
    for k, v in dict(points or {}).items():
        k = select([k])[0].id
        if k not in pts:
            raise ValueError(f"points: {k!r} is not one of the chosen exercises")
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"points for {k} must be a non-negative number, got {v!r}")
        pts[k] = float(v)
    text, chunks, header, listing = build_student_file([e.id for e in chosen], solutions,
                                                      hide_answers)
    out.mkdir(parents=True, exist_ok=True)
    path = out / STUDENT_FILE
    path.write_text(text, encoding="utf-8")
    cited = set(re.findall(r"Derivation: notes/(\S+\.md)", text))
    notes_report = _copy_notes(listing, out, hide_answers, notes_dir, cited,
                               _top_level_names(text))
    (out / "README.md").write_text(_readme(listing, pts, notes_report), encoding="utf-8")
    (out / "cases.json").write_text(json.dumps(_cases_json(chosen, seed, STUDENT_FILE,
                                                           vae_settings)) + "\n",
                                    encoding="utf-8")
    shutil.copyfile(Path(__file__).with_name("sandbox.py"), out / "check_my_work.py")
    if notebook:
        make_notebook(header, chunks, listing, out / NOTEBOOK_FILE)
    manifest = {"exercises": [e.id for e in chosen], "file": STUDENT_FILE, "points": pts,
                "partial_credit": bool(partial_credit), "seed": int(seed),
                "hidden_cases": bool(hidden_cases), "show_answers": not hide_answers,
                "solutions": bool(solutions), "notebook": bool(notebook),
                "timeout": float(timeout), "memory_mb": int(memory_mb),
                "vae_settings": [{k: c[k] for k in VAE_SETTINGS}
                                 for c in vae_configs(vae_settings)],
                "threshold": gradcheck.PASS, "numpyvae_version": package_version(),
                "notes": notes_report, "answers": _measured(out, hide_answers, solutions)}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path
