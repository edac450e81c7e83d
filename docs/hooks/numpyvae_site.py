"""MkDocs hook that turns the repository into numpyvae's course website.

Glue only: MkDocs, Material, mkdocstrings and KaTeX do the work. This hook

* adds the repository's own files to the build, read in place (never copied into docs/):
  ``README.md`` (the home page), ``derivations/*.md`` (the notes), ``docs/INSTRUCTORS.md``,
  ``docs/figures/*`` and any other repository file a page links to;
* makes the navigation: the notes in the reading order of ``derivations/README.md`` (then any
  note it does not list), one API page per public module of ``numpyvae`` (mkdocstrings), the
  gallery; no note file name is written anywhere, so renumbered notes need no edit here;
* links both ways: every ```numpyvae.module.Object.method``` named in backticks in a page
  becomes a link to its API entry (the build fails if the object does not exist), and every
  docstring line ``Derivation: derivations/NN_name.md, eq. (N.M)`` becomes a link to that
  equation (the build fails if the note or its ``\\tag{N.M}`` is missing);
* runs every ``examples/NN_*.py`` (small settings from ``extra.gallery_args`` in mkdocs.yml)
  into a cache, ``.cache/numpyvae-site/gallery/``, rerun only when the script, the shared
  ``examples/_*.py`` helpers or the arguments change, and makes one gallery page per example
  with its command, figures and printed output;
* exports the shipped models (``numpyvae/shipped/``) for the pages that run them in the browser:
  the latent explorer (``docs/site/explorer.md``) gets the 2-D model's decoder weights and the
  encoded validation digits, the demo beside the note on posterior collapse gets the default
  model's KL per dimension and its traversals; the demos are placed beside their notes (the
  reparameterisation, the collapse), and the home page points to the explorer first;
* checks every formula of every page with the bundled KaTeX (``node`` if on PATH, else the
  ``quickjs`` package): a formula KaTeX cannot parse fails the build.

Environment: ``NUMPYVAE_GALLERY=full`` runs the examples at their defaults;
``NUMPYVAE_GALLERY_JOBS`` (default 2) examples run at once; ``NUMPYVAE_GALLERY_TIMEOUT``
seconds per example (default 900); ``NUMPYVAE_GALLERY_CACHE`` moves the cache.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import html
import importlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.hooks.numpyvae_site")

KATEX_VERSION = "0.19.1"
KATEX_JS = "assets/katex/katex.min.js"

# the same patterns tests/test_traceability.py enforces
REF = re.compile(r"Derivation:\s*derivations/([\w.-]+\.md),\s*eq\.\s*\((\d+\.\d+)\)")
NAME_IN_CODE = re.compile(r"(?<![\[\w])`(numpyvae(?:\.\w+)+)`(?!\]|\()")
TAG = re.compile(r"\\tag\*?\{([^}]*)\}")
MD_LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})")
EXAMPLE = re.compile(r"^\d\d_[\w-]+\.py$")

#: the core modules in the order data flows through a VAE (README, "Map of the code")
CORE_ORDER = ["layers", "reparam", "likelihoods", "kl", "model", "optim", "gradcheck"]

STATE: dict = {}


# --------------------------------------------------------------------------- configuration

def on_config(config):
    root = Path(config.config_file_path).resolve().parent
    STATE.clear()
    STATE["root"] = root
    if str(root) not in sys.path:  # import this checkout's numpyvae, not another install's
        sys.path.insert(0, str(root))
    STATE["notes"] = _notes_in_reading_order(root)
    STATE["modules"] = _public_modules(root)
    STATE["examples"] = sorted(p.name for p in (root / "examples").glob("*.py")
                               if EXAMPLE.match(p.name))
    STATE["tags"] = {n: TAG.findall((root / "derivations" / n).read_text(encoding="utf-8"))
                     for n in STATE["notes"]}
    STATE["formulas"] = []
    config.nav = _navigation()
    return config


def _notes_in_reading_order(root):
    deriv = root / "derivations"
    # the numbered notes only: derivations/solutions.md is for instructors, not the public site
    notes = sorted(p.name for p in deriv.glob("[0-9][0-9]_*.md"))
    readme = (deriv / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^##\s+Reading order\s*$(.*?)(?=^##\s)", readme, re.M | re.S)
    ordered = []
    for target in re.findall(r"\]\(([\w.-]+\.md)\)", m.group(1) if m else ""):
        if target in notes and target not in ordered:
            ordered.append(target)
    return ordered + [n for n in notes if n not in ordered]


def _public_modules(root):
    """Dotted names of every public module and package under numpyvae/, packages first."""
    out = []
    for path in sorted((root / "numpyvae").rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts) or "__pycache__" in parts:
            continue
        out.append(".".join(parts))
    return out


def _api_uri(module):
    return f"api/{module}.md"


def _title(note):
    first = (STATE["root"] / "derivations" / note).read_text(encoding="utf-8").lstrip()
    m = re.match(r"#\s+(.+)", first)
    return m.group(1).strip() if m else note


def _navigation():
    mods = STATE["modules"]
    top = [m for m in mods if m.count(".") == 1 and m.split(".")[1] not in _packages()]
    core = [f"numpyvae.{c}" for c in CORE_ORDER if f"numpyvae.{c}" in top]
    core += [m for m in top if m not in core]
    def entry(m):
        return {m: _api_uri(m)}

    code = [{"Overview": "api/index.md"}, {"Core": [entry("numpyvae")] + [entry(m) for m in core]}]
    for pkg in _packages():
        inside = [m for m in mods if m.startswith(f"numpyvae.{pkg}.")]
        code.append({f"{pkg}/": [entry(f"numpyvae.{pkg}")] + [entry(m) for m in inside]})
    notes = [{"Overview and equation index": "derivations/README.md"}]
    notes += [{_title(n): f"derivations/{n}"} for n in STATE["notes"]]
    gallery = ["gallery/index.md"] + [
        {f"{Path(e).stem[:2]} · {Path(e).stem[3:].replace('_', ' ')}": f"gallery/{Path(e).stem}.md"}
        for e in STATE["examples"]]
    return [{"Home": "README.md"}, {"Latent explorer": "explorer.md"}, {"Notes": notes}, {"Code": code},
            {"Gallery": gallery}, {"Measured numbers": "docs/benchmarks.md"},
            {"For instructors": "docs/INSTRUCTORS.md"}]


def _packages():
    return [m.split(".")[1] for m in STATE["modules"] if m.count(".") == 1
            and (STATE["root"] / "numpyvae" / m.split(".")[1]).is_dir()]


# --------------------------------------------------------------------------- files

def on_files(files: Files, config):
    root = STATE["root"]
    use_urls = config.use_directory_urls
    site_dir = config.site_dir

    def add(src_uri, src_dir=root):
        if files.get_file_from_path(src_uri) is None:
            files.append(File(src_uri, str(src_dir), site_dir, use_urls))

    add("README.md")
    add("derivations/README.md")
    for n in STATE["notes"]:
        add(f"derivations/{n}")
    add("docs/INSTRUCTORS.md")
    add("docs/benchmarks.md")
    for p in sorted((root / "docs" / "figures").glob("*")):
        if p.is_file():
            add(p.relative_to(root).as_posix())
    # a repository file that a page links to and that is no page (a licence, a test file)
    for page_uri in ["README.md", "derivations/README.md", "docs/INSTRUCTORS.md", "docs/benchmarks.md",
                     *(f"derivations/{n}" for n in STATE["notes"])]:
        text = (root / page_uri).read_text(encoding="utf-8")
        for target in _links(text):
            path = _resolve(page_uri, target)
            # (numpyvae/*.py and examples/*.py links go to API and gallery pages instead)
            if (path and (root / path).is_file() and not path.endswith(".md")
                    and not (path.endswith(".py") and path.startswith(("numpyvae/", "examples/")))
                    and not path.startswith(("site/", ".cache/"))):
                add(path)

    for m in STATE["modules"]:
        files.append(File.generated(config, _api_uri(m), content=_api_page(m)))
    files.append(File.generated(config, "api/index.md", content=_api_index()))

    for uri, content in _model_exports().items():
        files.append(File.generated(config, uri, content=content))

    gallery = _run_gallery(config)
    for e in STATE["examples"]:
        stem = Path(e).stem
        for img in gallery[stem]["images"]:
            add(f"gallery/{stem}/{img}", src_dir=gallery["_cache"])
        files.append(File.generated(config, f"gallery/{stem}.md",
                                    content=_gallery_page(e, gallery[stem])))
    files.append(File.generated(config, "gallery/index.md", content=_gallery_index(gallery)))
    return files


def _links(text):
    return [m.group(2) for m in MD_LINK.finditer(_outside_fences_only(text))]


def _outside_fences_only(text):
    return "\n".join(line for line, fenced in _fence_marks(text) if not fenced)


def _fence_marks(text):
    """(line, inside a fenced code block?) for each line of Markdown."""
    fence = None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(2)
            yield line, True
        elif fence is not None:
            if m and m.group(2).startswith(fence[0] * len(fence)) and not line.strip()[len(m.group(2)):].strip():
                fence = None
            yield line, True
        else:
            yield line, False


def _resolve(page_uri, target):
    """The repository path a relative link of page_uri points at, or None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
        return None
    target = target.split("#")[0]
    if not target:
        return None
    parts = []
    for part in (PurePosixPath(page_uri).parent / target).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


# --------------------------------------------------------------------------- API pages

def _api_page(module):
    is_pkg = (STATE["root"] / Path(*module.split("."))).is_dir()
    lines = [f"::: {module}"]
    if is_pkg:
        lines += ["    options:", "      members: false", "      show_source: false", ""]
        inside = [m for m in STATE["modules"] if m.startswith(module + ".")]
        if inside:
            lines += ["**Modules**", ""]
            lines += [f"- [`{m}`]({PurePosixPath(_api_uri(m)).name}): {_summary_of_module(m)}"
                      for m in inside]
    else:
        lines += ["    options:", "      heading_level: 1", ""]
    return "\n".join(lines) + "\n"


def _summary_of_module(module):
    path = STATE["root"] / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().split("\n")[0]


def _notes_cited_by(module):
    path = STATE["root"] / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    seen = []
    for note, _ in REF.findall(path.read_text(encoding="utf-8")):
        if note not in seen:
            seen.append(note)
    return sorted(seen)


def _api_index():
    out = ["# The code", "",
           "One page per module, generated from the docstrings, with the source of every "
           "function. Each `Derivation:` line there links to the equation it implements, and "
           "each note links back to the functions it derives.", ""]
    groups = {"Core": [m for m in STATE["modules"] if m.count(".") <= 1
                       and (m == "numpyvae" or m.split(".")[1] not in _packages())]}
    for pkg in _packages():
        groups[f"numpyvae.{pkg}"] = [m for m in STATE["modules"]
                                     if m == f"numpyvae.{pkg}" or m.startswith(f"numpyvae.{pkg}.")]
    for title, mods in groups.items():
        out += [f"## {title}", ""]
        for m in mods:
            notes = ", ".join(f"[{n[:-3]}](../derivations/{n})" for n in _notes_cited_by(m))
            line = f"- [`{m}`]({m}.md): {_summary_of_module(m)}"
            out.append(line + (f" *Derived in* {notes}." if notes else ""))
        out.append("")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- page Markdown

def on_page_markdown(markdown, page, config, files):
    uri = page.file.src_uri
    markdown = _rewrite_source_links(markdown, uri, files)
    if uri.startswith("derivations/") or uri in ("README.md", "docs/INSTRUCTORS.md"):
        markdown, named = _link_names(markdown, uri)
        if uri.startswith("derivations/"):
            markdown = _link_equation_numbers(markdown, uri)
        if uri.startswith("derivations/") and uri != "derivations/README.md" and named:
            markdown = _add_code_box(markdown, uri, named)
    if uri.startswith("derivations/"):
        markdown = _add_demo(markdown, uri, page)
    if uri == "README.md":
        markdown = _point_to_explorer(markdown)
    return markdown


def _rewrite_source_links(markdown, page_uri, files):
    """Links to numpyvae/*.py or examples/ go to their API or gallery page."""
    root = STATE["root"]

    def repl(m):
        target = m.group(2)
        path = _resolve(page_uri, target)
        if path is None or files.get_file_from_path(path) is not None:
            return m.group(0)
        dest = None
        p = PurePosixPath(path.rstrip("/"))
        if p.parts and p.parts[0] == "numpyvae" and (root / p).exists():
            dotted = ".".join(p.with_suffix("").parts) if p.suffix == ".py" else ".".join(p.parts)
            dotted = dotted.removesuffix(".__init__")
            if dotted in STATE["modules"]:
                dest = _api_uri(dotted)
        elif p.parts and p.parts[0] == "examples" and (root / p).exists():
            dest = f"gallery/{p.stem}.md" if p.suffix == ".py" and EXAMPLE.match(p.name) \
                else "gallery/index.md"
        if dest is None:
            return m.group(0)
        rel = _relpath(dest, page_uri)
        return f"{m.group(1)}{rel}{m.group(3)}"

    return _map_outside_fences(markdown, lambda line: MD_LINK.sub(repl, line))


def _relpath(dest_uri, page_uri):
    return os.path.relpath(dest_uri, PurePosixPath(page_uri).parent.as_posix() or ".").replace(os.sep, "/")


def _map_outside_fences(markdown, fn):
    return "\n".join(line if fenced else fn(line) for line, fenced in _fence_marks(markdown))


def _resolve_object(dotted):
    """The object a dotted numpyvae name denotes, or raise LookupError."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                raise LookupError(dotted)
            obj = getattr(obj, attr)
        return obj
    raise LookupError(dotted)


def _link_names(markdown, page_uri):
    named = []

    def repl(m):
        dotted = m.group(1)
        try:
            _resolve_object(dotted)
        except LookupError:
            log.warning(f"{page_uri} names `{dotted}`, which does not exist in numpyvae")
            return m.group(0)
        if any(p.startswith("_") and not p.startswith("__") for p in dotted.split(".")):
            return m.group(0)  # private: no API entry to link to
        if dotted not in named:
            named.append(dotted)
        return f"[`{dotted}`][{dotted}]"

    def line_fn(line):
        # leave inline code that sits inside a [...](...) link text alone
        return NAME_IN_CODE.sub(repl, line)

    return _map_outside_fences(markdown, line_fn), named


# the parts of a line that must not change: code spans, math, links, HTML tags
PROTECTED = re.compile(r"(`+).*?\1|\$\$.*?\$\$|\$[^$]*\$|\[[^\]]*\]\([^)]*\)|\[[^\]]*\]\[[^\]]*\]|<[^>]+>")
EQ_NUMBER = re.compile(r"(?<![\w\]\[])\((\d+\.\d+)\)(?![\]\(])")


def _link_equation_numbers(markdown, page_uri):
    """A bare "(N.M)" in a note's prose links to the equation tagged N.M, in whichever note."""
    where = {}
    for note, tags in STATE["tags"].items():
        for t in tags:
            where.setdefault(t, note)
    here = PurePosixPath(page_uri).name

    def number(m):
        note = where.get(m.group(1))
        if note is None:
            return m.group(0)
        target = "" if note == here else note
        return f"[({m.group(1)})]({target}#eq-{m.group(1)})"

    def line_fn(line):
        out, pos = [], 0
        for p in PROTECTED.finditer(line):
            out.append(EQ_NUMBER.sub(number, line[pos:p.start()]))
            out.append(p.group(0))
            pos = p.end()
        out.append(EQ_NUMBER.sub(number, line[pos:]))
        return "".join(out)

    in_math = False
    lines = []
    for line, fenced in _fence_marks(markdown):
        if not fenced and line.strip().startswith("$$") and line.count("$$") % 2 == 1:
            in_math = not in_math
            lines.append(line)
        elif fenced or in_math:
            lines.append(line)
        else:
            lines.append(line_fn(line))
    return "\n".join(lines)


def _add_code_box(markdown, page_uri, named):
    note = PurePosixPath(page_uri).name
    rows = []
    for dotted in named:
        obj = _resolve_object(dotted)
        doc = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0] if not isinstance(
            obj, type(sys)) else ""
        eqs = [tag for n, tag in REF.findall(getattr(obj, "__doc__", None) or "") if n == note]
        eq = ", ".join(f"[({t})](#eq-{t})" for t in eqs)
        doc = doc.replace("|", "\\|")
        rows.append(f"    | [`{dotted}`][{dotted}] | {eq} | {doc} |")
    box = ["", f'??? abstract "The code this note derives: {len(named)} '
               f'object{"s" if len(named) != 1 else ""} (click to open)"',
           "", "    | object | equation | what it does |", "    |---|---|---|", *rows, ""]
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("# "):
            return "\n".join(lines[:i + 1] + box + lines[i + 1:])
    return "\n".join(box + lines)


# --------------------------------------------------------------------------- shipped models

#: the shipped model each page runs (numpyvae/shipped/<name>.npz)
EXPLORER_MODEL = "mnist-2d"
KL_MODEL = "mnist-20d"
#: the demo placed in a note: a word of the note's file name -> (demo, a word of the heading
#: of the section it follows)
DEMOS = {"reparameteri": ("reparam", "Backward"), "collapse": ("kl", "collapse")}
TRAVERSAL = [-3.0, -2.25, -1.5, -0.75, 0.0, 0.75, 1.5, 2.25, 3.0]


def _b64(a, dtype):
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _model_exports():
    """{site path: JavaScript} for the shipped models the pages use.

    Each file sets ``window.numpyvaeModels[name]``: little-endian float32 and uint8 arrays in
    base64 inside a script (a <script src> works from file:// too, where fetch does not).
    """
    # this checkout's numpyvae: importable once on_config has put the root on sys.path
    from numpyvae.data import load_dataset
    from numpyvae.training import pretrained

    out = {}
    for name, kind in ((EXPLORER_MODEL, "explorer"), (KL_MODEL, "kl")):
        path = Path(pretrained.shipped_path(name))
        try:
            vae = pretrained.load_model(path)
            ck_extra = _shipped_record(path)
        except ValueError as exc:  # CheckpointError: e.g. written before a format change
            log.warning(f"the explorer and the demos need {path.relative_to(STATE['root'])}, which "
                        f"cannot be read ({exc}); rerun python scripts/make_shipped_models.py --force")
            continue
        cfg = vae.config
        ds = load_dataset("mnist-embedded", seed=int(ck_extra.get("data_seed", 0)))
        x, y = ds.x_val, ds.y_val
        mu, logvar = (np.asarray(a, dtype=np.float64) for a in vae.encode(x))
        data = {"name": name, "checkpoint": path.relative_to(STATE["root"]).as_posix(),
                "z_dim": cfg["z_dim"], "x_dim": cfg["x_dim"], "image_shape": [28, 28],
                "val_neg_elbo": ck_extra.get("shipped", {}).get("val_neg_elbo"),
                "command": ck_extra.get("shipped", {}).get("command")}
        if kind == "explorer":
            lins = [lin for _, lin in vae.dec.layers()] + [vae.dec_out]
            acts = [cfg["activation"]] * (len(lins) - 1)
            acts.append("sigmoid" if cfg["likelihood"] == "bernoulli" else "identity")
            data["layers"] = [{"n_in": int(lin.W.shape[0]), "n_out": int(lin.W.shape[1]), "act": act,
                               "W": _b64(lin.W, "<f4"), "b": _b64(lin.b, "<f4")}
                              for lin, act in zip(lins, acts)]
            data["points"] = {"n": len(x), "mu": _b64(mu, "<f4"), "logvar": _b64(logvar, "<f4"),
                              "label": _b64(y, "u1"),
                              "image": _b64(np.rint(np.asarray(x) * 255), "u1")}
        else:
            # note 09: the average KL of each dimension (2.x per coordinate) and A_j of (9.3)
            kl_j = 0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1.0)
            data["kl"] = [round(float(v), 5) for v in kl_j.mean(axis=0)]
            data["activity"] = [round(float(v), 5) for v in mu.var(axis=0)]
            data["traversal"] = TRAVERSAL
            z = np.zeros((cfg["z_dim"], len(TRAVERSAL), cfg["z_dim"]))
            for j in range(cfg["z_dim"]):
                z[j, :, j] = TRAVERSAL
            imgs = vae.decode_mean(z.astype(vae.dtype))
            data["images"] = _b64(np.rint(np.asarray(imgs) * 255), "u1")
        out[f"assets/models/{name}.js"] = (
            f"// {name}: exported from {data['checkpoint']} when the site was built\n"
            "window.numpyvaeModels = window.numpyvaeModels || {};\n"
            f"window.numpyvaeModels[{json.dumps(name)}] = {json.dumps(data)};\n")
    return out


def _shipped_record(path):
    """The checkpoint's ``extra`` record (data seed, the shipped model's command and numbers)."""
    from numpyvae.training import checkpoint  # see _model_exports
    return checkpoint.load(path).extra


def _scripts(page, *names):
    """<script> tags for site files ``names``, relative to ``page``."""
    return "\n".join(f'<script src="{get_relative_url(n, page.url)}"></script>' for n in names)


def _add_demo(markdown, uri, page):
    note = PurePosixPath(uri).name
    for word, (demo, after) in DEMOS.items():
        if word not in note:
            continue
        block = DEMO_HTML[demo] + "\n" + _scripts(
            page, *([f"assets/models/{KL_MODEL}.js"] if demo == "kl" else []),
            "assets/javascripts/numpyvae-common.js", "assets/javascripts/demos.js") + "\n"
        return _insert_after_section(markdown, after, block, uri)
    return markdown


def _insert_after_section(markdown, word, block, uri):
    """``block`` goes before the ``## `` heading that follows the first one naming ``word``
    (a rewritten note without such a heading gets it before "In the code", or at the end)."""
    lines = markdown.split("\n")
    heads = [i for i, (line, fenced) in enumerate(_fence_marks(markdown))
             if not fenced and line.startswith("## ")]
    first = next((i for i in heads if word.lower() in lines[i].lower()), None)
    if first is None:
        log.info(f"{uri}: no section heading names {word!r}; the demo goes before 'In the code'")
        nxt = next((i for i in heads if "in the code" in lines[i].lower()), len(lines))
    else:
        nxt = next((i for i in heads if i > first), len(lines))
    return "\n".join(lines[:nxt] + ["", block, ""] + lines[nxt:])


def _point_to_explorer(markdown):
    box = ['!!! tip "Start here: the latent explorer"', "",
           "    The fastest way to see what a VAE learned: [drag a cursor over the latent plane]"
           "(explorer.md) of the model that ships with the package, and watch its decoder "
           "answer in your browser. Click a digit to see its posterior q(z|x) and samples "
           "drawn from it.", ""]
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("# "):
            return "\n".join(lines[:i + 1] + [""] + box + lines[i + 1:])
    return "\n".join(box + lines)


DEMO_HTML = {
    "reparam": """<div class="numpyvae-demo" id="numpyvae-demo-reparam">
<p class="numpyvae-demo-title"><strong>Try it: the reparameterisation.</strong> Twelve noise draws
ε<sub>k</sub> are held fixed; z<sub>k</sub> = μ + σ ⊙ ε<sub>k</sub> with σ = e<sup>v/2</sup>
(<a href="#eq-4.1">4.1</a>). Move μ and v = log σ²: every sample moves with μ one for one
(∂z/∂μ = 1), and each arrow is ∂z<sub>k</sub>/∂v = ε<sub>k</sub> ⊙ σ/2 (<a href="#eq-4.2">4.2</a>),
how far the sample moves when v rises by one. The ellipses are one and two σ of q.</p>
<div class="numpyvae-demo-row">
<canvas width="360" height="360" aria-label="samples of q in the plane"></canvas>
<div class="numpyvae-demo-controls">
<label>μ<sub>1</sub> <input type="range" data-k="mu0" min="-2" max="2" step="0.05" value="0.5"></label>
<label>μ<sub>2</sub> <input type="range" data-k="mu1" min="-2" max="2" step="0.05" value="-0.5"></label>
<label>v<sub>1</sub> = log σ<sub>1</sub>²
<input type="range" data-k="v0" min="-4" max="2" step="0.05" value="0"></label>
<label>v<sub>2</sub> = log σ<sub>2</sub>²
<input type="range" data-k="v1" min="-4" max="2" step="0.05" value="-1.5"></label>
<button type="button" class="md-button">new ε</button>
<output></output>
</div></div></div>""",
    "kl": """<div class="numpyvae-demo" id="numpyvae-demo-kl">
<p class="numpyvae-demo-title"><strong>Try it: the KL of each latent dimension.</strong> The
shipped 784-400-20 model (<code>numpyvae.load_model("mnist-20d")</code>), its average
KL(q(z<sub>j</sub>|x) ‖ N(0, 1)) over the 1000 validation digits, one bar per dimension, largest
first; a pale bar is a dimension that is not active by (<a href="#eq-9.3">9.3</a>). Put the pointer
on a bar: the row below decodes z = 0 with that one coordinate moved from −3 to 3. A collapsed
dimension changes nothing.</p>
<canvas class="numpyvae-kl-bars" width="640" height="200" aria-label="KL per dimension"></canvas>
<canvas class="numpyvae-kl-row" width="504" height="56" aria-label="traversal of one dimension"></canvas>
<output></output></div>""",
}


# --------------------------------------------------------------------------- page HTML

DISPLAY = re.compile(r'<div class="arithmatex">(.*?)</div>', re.S)
ANY_MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
PRE = re.compile(r"(<pre\b.*?</pre>|<code\b.*?</code>)", re.S)


def on_page_content(html_text, page, config, files):
    uri = page.file.src_uri
    if uri.startswith("derivations/"):
        html_text = DISPLAY.sub(_anchor_equation, html_text)
        # tell MkDocs' link validation that these anchors exist (they are made here, after
        # the Markdown pass that normally collects them)
        ids = getattr(page, "present_anchor_ids", None)
        if isinstance(ids, set):
            ids.update(f"eq-{t}" for t in TAG.findall(html.unescape(html_text)))
    if uri.startswith("api/"):
        html_text = "".join(part if PRE.fullmatch(part) else _link_derivations(part, page, files)
                            for part in PRE.split(html_text))
    for kind, body in ANY_MATH.findall(html_text):
        STATE["formulas"].append((uri, kind == "div", _tex_of(body)))
    return html_text


def _tex_of(body):
    tex = html.unescape(re.sub(r"<[^>]+>", "", body)).strip()
    for a, b in (("\\(", "\\)"), ("\\[", "\\]"), ("$$", "$$"), ("$", "$")):
        if tex.startswith(a) and tex.endswith(b):
            return tex[len(a):len(tex) - len(b)].strip()
    return tex


def _anchor_equation(m):
    tags = TAG.findall(html.unescape(m.group(1)))
    if not tags:
        return m.group(0)
    extra = "".join(f'<span id="eq-{html.escape(t)}"></span>' for t in tags[1:])
    return f'{extra}<div class="arithmatex" id="eq-{html.escape(tags[0])}">{m.group(1)}</div>'


def _link_derivations(part, page, files):
    def repl(m):
        note, tag = m.group(1), m.group(2)
        f = files.get_file_from_path(f"derivations/{note}")
        if f is None:
            log.warning(f"{page.file.src_uri}: a docstring cites derivations/{note}, "
                        "which does not exist")
            return m.group(0)
        if tag not in STATE["tags"].get(note, []):
            log.warning(f"{page.file.src_uri}: a docstring cites eq. ({tag}) of {note}, "
                        f"which has no \\tag{{{tag}}}")
            return m.group(0)
        href = get_relative_url(f.url, page.url) + f"#eq-{tag}"
        return (f'Derivation: <a class="numpyvae-derivation" href="{href}">'
                f'derivations/{note}, eq. ({tag})</a>')

    return REF.sub(repl, part)


# --------------------------------------------------------------------------- formulas

KATEX_CHECK_JS = r"""
function check(items) {
  return items.map(function (it) {
    try { katex.renderToString(it[0], {displayMode: it[1], throwOnError: true}); return ""; }
    catch (e) { return String(e.message || e); }
  });
}
"""


def on_post_build(config):
    formulas = STATE.get("formulas", [])
    unique = sorted({(tex, disp) for _, disp, tex in formulas})
    errors = _katex_errors(config, unique)
    if errors is None:
        log.warning("could not check the formulas: install Node.js or the 'quickjs' package "
                    "(pip install -e \".[docs]\")")
        return
    bad = {k: e for k, e in zip(unique, errors) if e}
    for uri, disp, tex in formulas:
        if (tex, disp) in bad:
            log.warning(f"{uri}: KaTeX cannot render {tex!r}: {bad[(tex, disp)]}")
    log.info(f"KaTeX {KATEX_VERSION} parsed {len(formulas)} formulas "
             f"({len(unique)} distinct), {len(bad)} failed")


def _katex_errors(config, items):
    js_path = Path(config.docs_dir) / KATEX_JS
    cache_file = _cache_root() / f"katex-{KATEX_VERSION}.json"
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    key = lambda it: ("D" if it[1] else "I") + it[0]  # noqa: E731
    todo = [it for it in items if key(it) not in cache]
    if todo:
        results = _run_katex(js_path, todo)
        if results is None:
            return None
        cache.update({key(it): r for it, r in zip(todo, results)})
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        tmp.replace(cache_file)
    return [cache[key(it)] for it in items]


def _run_katex(js_path, items):
    node = shutil.which("node") or shutil.which("nodejs")
    payload = [[t, d] for t, d in items]
    if node:
        script = (f"const katex = require({json.dumps(str(js_path))});\n{KATEX_CHECK_JS}\n"
                  "let s = ''; process.stdin.on('data', d => s += d);\n"
                  "process.stdin.on('end', () => process.stdout.write(JSON.stringify(check(JSON.parse(s)))));\n")
        with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
            f.write(script)
        try:
            r = subprocess.run([node, f.name], input=json.dumps(payload), capture_output=True,
                               text=True, timeout=600)
            if r.returncode == 0:
                return json.loads(r.stdout)
            log.info(f"node could not run KaTeX ({r.stderr.strip()[-300:]}); trying quickjs")
        finally:
            os.unlink(f.name)
    try:
        import quickjs
    except ImportError:
        return None
    ctx = quickjs.Context()
    ctx.eval(js_path.read_text(encoding="utf-8"))
    ctx.eval(KATEX_CHECK_JS + "function checkJson(s) { return JSON.stringify(check(JSON.parse(s))); }")
    return json.loads(ctx.get("checkJson")(json.dumps(payload)))


# --------------------------------------------------------------------------- gallery

def _cache_root():
    env = os.environ.get("NUMPYVAE_GALLERY_CACHE")
    return Path(env) if env else STATE["root"] / ".cache" / "numpyvae-site"


def _example_args(config, stem):
    if os.environ.get("NUMPYVAE_GALLERY", "").lower() == "full":
        return []
    args = (config.extra.get("gallery_args") or {}).get(stem, "")
    return shlex.split(args) if isinstance(args, str) else [str(a) for a in args]


def _run_gallery(config):
    root = STATE["root"]
    cache = _cache_root() / "gallery"
    helpers = b"".join(p.read_bytes() for p in sorted((root / "examples").glob("_*.py")))
    jobs = []
    result = {"_cache": cache.parent}
    for e in STATE["examples"]:
        stem = Path(e).stem
        args = _example_args(config, stem)
        key = hashlib.sha256((root / "examples" / e).read_bytes() + helpers
                             + json.dumps(args).encode()).hexdigest()
        out = cache / stem
        meta_file = out / "_run.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if meta is None or meta.get("key") != key or meta.get("returncode") != 0:
            jobs.append((e, stem, args, key, out))
        else:
            result[stem] = meta
    if jobs:
        n = max(1, int(os.environ.get("NUMPYVAE_GALLERY_JOBS", "2")))
        log.info(f"gallery: running {len(jobs)} example(s), {n} at a time")
        with ThreadPoolExecutor(n) as pool:
            for stem, meta in pool.map(lambda j: _run_example(root, *j), jobs):
                result[stem] = meta
    for e in STATE["examples"]:
        meta = result[Path(e).stem]
        if meta["returncode"] != 0:
            log.warning(f"gallery: examples/{e} failed (exit {meta['returncode']}): "
                        f"{meta['stderr'][-800:]}")
    return result


def _run_example(root, e, stem, args, key, out):
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(root / "examples" / e), "--out", str(out), *args]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                           timeout=float(os.environ.get("NUMPYVAE_GALLERY_TIMEOUT", "900")))
        code, stdout, stderr = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout, stderr = -1, exc.stdout or "", f"timed out after {exc.timeout} s"
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
    seconds = time.perf_counter() - t0
    stdout = stdout.replace(str(out), "examples/output")
    meta = {"key": key, "returncode": code, "seconds": round(seconds, 1), "args": args,
            "stdout": stdout, "stderr": stderr[-4000:],
            "images": sorted(p.name for p in out.glob("*.png")),
            "tables": sorted(p.name for p in out.glob("*.txt"))}
    (out / "_run.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    log.info(f"gallery: examples/{e} took {seconds:.1f} s (exit {code})")
    return stem, meta


def _example_doc(e):
    src = (STATE["root"] / "examples" / e).read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(src)) or e
    title, _, body = doc.partition("\n")
    # drop the usage lines (indented `python examples/...`): the page shows the command itself
    lines, prev = [], ""
    for line in body.split("\n"):
        if line.strip().startswith("python examples/"):
            continue
        # a docstring's "* item" list needs a blank line before it to be a Markdown list
        if re.match(r"\s*[*-]\s", line) and prev.strip() and not re.match(r"\s*[*-]\s", prev):
            lines.append("")
        lines.append(html.escape(line.strip() if re.match(r"\s*[*-]\s", line) else line,
                                 quote=False))
        prev = line
    return title.strip(), "\n".join(lines).strip(), src


def _command(e, args):
    return " ".join(["python", f"examples/{e}", *map(shlex.quote, args)])


def _gallery_page(e, meta):
    stem = Path(e).stem
    title, body, src = _example_doc(e)
    body = re.sub(r"(?<![\w/])derivations/([\w.-]+\.md)",
                  lambda m: (f"[derivations/{m.group(1)}](../derivations/{m.group(1)})"
                             if m.group(1) in STATE["notes"] else m.group(0)), body)
    out = [f"# {stem[:2]} · {title}", "", body, "",
           "**The command** (from the repository root; it writes to `examples/output/`, "
           "or to the folder given by `--out`):", "",
           "```bash", _command(e, meta["args"]), "```", ""]
    if meta["args"]:
        out += [f"The gallery runs it with small settings so that the site builds in a minute "
                f"or two; `python examples/{e}` runs the full defaults "
                f"(the numbers quoted in the README).", ""]
    if meta["returncode"] != 0:
        out += ["!!! failure \"This example failed when the site was built\"", "",
                "    ```text", *("    " + ln for ln in meta["stderr"].splitlines()[-30:]),
                "    ```", ""]
    for img in meta["images"]:
        out += [f"![{html.escape(title)}]({stem}/{img}){{ .numpyvae-figure loading=lazy }}", ""]
    out += [f"**What it printed** ({meta['seconds']:.0f} s when this site was built):", "",
            "```text", meta["stdout"].rstrip() or "(nothing)", "```", "",
            f'??? example "The source: examples/{e}"', "", "    ```python",
            *("    " + ln if ln else "" for ln in src.rstrip().split("\n")), "    ```", ""]
    return "\n".join(out)


def _gallery_index(gallery):
    out = ["# Gallery", "",
           "Every script in `examples/` is run when this site is built, and its figure and "
           "printed table are shown with the command that made them. The figures here use "
           "small settings (listed on each page) so that the site builds quickly; run a "
           "script without arguments for the full version.", "",
           '<div class="grid cards" markdown>', ""]
    for e in STATE["examples"]:
        stem = Path(e).stem
        title, _, _ = _example_doc(e)
        meta = gallery[stem]
        thumb = (f"[![{html.escape(title)}]({stem}/{meta['images'][0]}){{ loading=lazy }}]"
                 f"({stem}.md)" if meta["images"] else "")
        out += [f"-   **[{stem}]({stem}.md)**", "", f"    {title}", "", f"    {thumb}", ""]
    out += ["</div>", ""]
    return "\n".join(out)
