"""Each equation has a function, each function an equation: both directions checked.

1. Every public function and class of the core (the modules at the top of ``numpyvae/``)
   and of the ``theory`` wing has a docstring line
   ``Derivation: derivations/<note>.md, eq. (N.M)``. The bookkeeping wings (``data``,
   ``training``, ``teaching``, ``cli``) are exempt as folders; the references they do
   give must still hold.
2. That note exists, holds ``\\tag{N.M}``, and names the object back by its dotted
   name (``numpyvae.kl.kl_normal_std``, ``numpyvae.model.VAE.forward``).
3. Every dotted ``numpyvae.…`` name written in backticks in derivations/ exists.
4. Every relative link from a note into ../numpyvae/ points at a real file.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import numpyvae

ROOT = Path(__file__).resolve().parents[1]
DERIV = ROOT / "derivations"
REF = re.compile(r"Derivation:\s*derivations/([\w.-]+\.md),\s*eq\.\s*\((\d+\.\d+)\)")
NAME_IN_NOTE = re.compile(r"`(numpyvae(?:\.\w+)+)`")
LINK = re.compile(r"\]\((\.\./numpyvae/[^)#\s]+)")

pytestmark = pytest.mark.skipif(not DERIV.is_dir(), reason="derivations/ not present")


#: Wings that hold bookkeeping, not equations: their objects need no ``Derivation:`` line.
EXEMPT_WINGS = ("data", "training", "teaching", "cli", "speed")


def _modules():
    """Every module of the package, the core and each wing's, but none private."""
    for info in pkgutil.walk_packages(numpyvae.__path__, prefix="numpyvae."):
        if info.ispkg or any(part.startswith("_") for part in info.name.split(".")):
            continue
        yield importlib.import_module(info.name)


def _exempt(mod):
    parts = mod.__name__.split(".")
    return len(parts) > 2 and parts[1] in EXEMPT_WINGS


def _public_objects():
    """(dotted name, object) for every public function/class and each documented method."""
    for mod in _modules():
        # exempt modules need no references, but the references they do give must hold
        exempt = _exempt(mod)
        names = getattr(mod, "__all__", None)
        if names is None:
            names = [n for n, o in vars(mod).items() if not n.startswith("_")
                     and (inspect.isfunction(o) or inspect.isclass(o))
                     and getattr(o, "__module__", None) == mod.__name__]
        for n in names:
            obj = getattr(mod, n)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            yield f"{mod.__name__}.{n}", obj, not exempt
            if inspect.isclass(obj):
                for mn, m in vars(obj).items():
                    if not mn.startswith("_") and inspect.isfunction(m):
                        yield f"{mod.__name__}.{n}.{mn}", m, False


def _note(name):
    return (DERIV / name).read_text(encoding="utf-8")


def reference_problems(objects, read_note):
    """Problems with ``Derivation:`` references, as strings (empty list: all hold).

    objects: iterable of (dotted name, docstring, required); read_note(name) returns the text
    of derivations/<name>, or None when that note does not exist.
    """
    problems = []
    for dotted, doc, required in objects:
        refs = REF.findall(doc or "")
        if not refs:
            if required:
                problems.append(f"{dotted}: docstring has no 'Derivation: derivations/…, eq. (N.M)'")
            continue
        for note, tag in refs:
            text = read_note(note)
            if text is None:
                problems.append(f"{dotted}: cites missing note derivations/{note}")
                continue
            if f"\\tag{{{tag}}}" not in text:
                problems.append(f"{dotted}: derivations/{note} has no \\tag{{{tag}}}")
            if f"`{dotted}`" not in text:
                problems.append(f"{dotted}: derivations/{note} does not name `{dotted}` back")
    return problems


def _read_real_note(name):
    path = DERIV / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def test_every_public_object_names_its_equation_and_is_named_back():
    objects = [(dotted, inspect.getdoc(obj), required) for dotted, obj, required in _public_objects()]
    problems = reference_problems(objects, _read_real_note)
    assert not problems, "\n".join(problems)


def test_the_reference_checker_reports_a_broken_fixture():
    notes = {"01_a.md": "x \\tag{1.1} names `pkg.good` and `pkg.missing_tag`",
             "02_b.md": "y \\tag{2.1}"}
    objects = [
        ("pkg.good", "Derivation: derivations/01_a.md, eq. (1.1)", True),
        ("pkg.missing_note", "Derivation: derivations/09_none.md, eq. (9.1)", True),
        ("pkg.missing_tag", "Derivation: derivations/01_a.md, eq. (1.7)", True),
        ("pkg.not_named", "Derivation: derivations/02_b.md, eq. (2.1)", True),
        ("pkg.no_line", "A docstring without a reference.", True),
        ("pkg.exempt", "A docstring without a reference.", False),
    ]
    problems = reference_problems(objects, notes.get)
    assert len(problems) == 4, problems
    assert not any(p.startswith(("pkg.good", "pkg.exempt")) for p in problems)
    for who, what in [("pkg.missing_note", "missing note"), ("pkg.missing_tag", "has no \\tag{1.7}"),
                      ("pkg.not_named", "does not name `pkg.not_named` back"),
                      ("pkg.no_line", "has no 'Derivation")]:
        assert any(p.startswith(who) and what in p for p in problems), (who, problems)


# ----------------------------------------------------------------- README's equation index
_ROW = re.compile(r"^\|\s*\((\d+\.\d+)\)\s*\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|\s*$", re.M)
_TAG = re.compile(r"\\tag\{(\d+\.\d+)\}")


def index_problems(index_text, note_tags, cited):
    """Problems between README's equation index and the notes (empty list: consistent).

    note_tags: {tag: note file}; cited: {tag: set of dotted names whose docstrings cite it}.
    Every tag of the notes has one row, every row a tag of the notes, and a row names every
    function whose docstring cites its tag.
    """
    rows = {}
    problems = []
    for m in _ROW.finditer(index_text):
        tag, functions = m.group(1), m.group(4)
        if tag in rows:
            problems.append(f"({tag}) has two rows in the index")
        rows[tag] = set(re.findall(r"`(numpyvae(?:\.\w+)+)`", functions))
    for tag, note in sorted(note_tags.items()):
        if tag not in rows:
            problems.append(f"({tag}) of {note} is missing from the equation index")
    for tag in sorted(rows):
        if tag not in note_tags:
            problems.append(f"index row ({tag}) has no \\tag{{{tag}}} in any note")
    for tag, names in sorted(cited.items()):
        for name in sorted(names - rows.get(tag, set())):
            if tag in rows:
                problems.append(f"index row ({tag}) does not name `{name}`, whose docstring cites it")
    return problems


def _note_tags():
    tags = {}
    for path in sorted(DERIV.glob("[0-9][0-9]_*.md")):
        for tag in _TAG.findall(path.read_text(encoding="utf-8")):
            tags[tag] = path.name
    return tags


def _cited_tags():
    cited = {}
    for dotted, obj, _ in _public_objects():
        for _note_name, tag in REF.findall(inspect.getdoc(obj) or ""):
            cited.setdefault(tag, set()).add(dotted)
    return cited


def test_equation_index_matches_the_notes():
    readme = DERIV / "README.md"
    problems = index_problems(readme.read_text(encoding="utf-8"), _note_tags(), _cited_tags())
    assert not problems, "\n".join(problems)


def test_the_index_checker_reports_a_broken_fixture():
    index = ("| tag | what | source | functions | tests |\n|---|---|---|---|---|\n"
             "| (1.1) | a | b | `numpyvae.kl.kl_normal_std` | t |\n"
             "| (1.9) | stale row | b | — | t |\n"
             "| (1.1) | duplicate | b | — | t |\n")
    problems = index_problems(index, {"1.1": "01_a.md", "1.2": "01_a.md"},
                              {"1.1": {"numpyvae.kl.kl_normal_std", "numpyvae.kl.kl_mvn"}})
    text = "\n".join(problems)
    for needle in ["(1.1) has two rows", "(1.2) of 01_a.md is missing", "index row (1.9) has no",
                   "does not name `numpyvae.kl.kl_mvn`"]:
        assert needle in text, text


def _resolve(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p)
        return obj
    raise ImportError(dotted)


def test_every_function_named_in_the_notes_exists():
    dangling = []
    for path in sorted(DERIV.glob("*.md")):
        for dotted in set(NAME_IN_NOTE.findall(path.read_text(encoding="utf-8"))):
            try:
                _resolve(dotted)
            except (ImportError, AttributeError):
                dangling.append(f"{path.name}: `{dotted}`")
    assert not dangling, "names in derivations/ that do not exist:\n" + "\n".join(dangling)


def test_links_from_notes_into_the_code_resolve():
    broken = []
    for path in sorted(DERIV.glob("*.md")):
        for link in LINK.findall(path.read_text(encoding="utf-8")):
            if not (DERIV / link).resolve().exists():
                broken.append(f"{path.name}: {link}")
    assert not broken, "\n".join(broken)


def test_every_test_named_in_the_notes_exists():
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
    missing = []
    for path in sorted(DERIV.glob("*.md")):
        for name in set(re.findall(r"`(test_\w+)`", path.read_text(encoding="utf-8"))):
            if name not in defined:
                missing.append(f"{path.name}: `{name}`")
    assert not missing, "tests named in derivations/ that do not exist:\n" + "\n".join(missing)


def test_every_tag_is_unique_within_the_notes():
    seen, dup = {}, []
    for path in sorted(DERIV.glob("*.md")):
        for tag in re.findall(r"\\tag\{([^}]*)\}", path.read_text(encoding="utf-8")):
            if tag in seen:
                dup.append(f"\\tag{{{tag}}} in {seen[tag]} and {path.name}")
            seen[tag] = path.name
    assert not dup, "\n".join(dup)
