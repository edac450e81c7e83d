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
EXEMPT_WINGS = ("data", "training", "teaching", "cli")


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


def test_every_public_object_names_its_equation_and_is_named_back():
    problems = []
    for dotted, obj, required in _public_objects():
        refs = REF.findall(inspect.getdoc(obj) or "")
        if not refs:
            if required:
                problems.append(f"{dotted}: docstring has no 'Derivation: derivations/…, eq. (N.M)'")
            continue
        for note, tag in refs:
            path = DERIV / note
            if not path.is_file():
                problems.append(f"{dotted}: cites missing note derivations/{note}")
                continue
            text = _note(note)
            if f"\\tag{{{tag}}}" not in text:
                problems.append(f"{dotted}: derivations/{note} has no \\tag{{{tag}}}")
            if f"`{dotted}`" not in text:
                problems.append(f"{dotted}: derivations/{note} does not name `{dotted}` back")
    assert not problems, "\n".join(problems)


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


def test_the_checker_itself_catches_a_dangling_reference(tmp_path):
    # a docstring citing a tag no note holds must be reported by the same regex path
    doc = "Derivation: derivations/03_kl.md, eq. (3.999)"
    (note, tag), = REF.findall(doc)
    assert (note, tag) == ("03_kl.md", "3.999")
    if (DERIV / note).is_file():
        assert f"\\tag{{{tag}}}" not in _note(note)
