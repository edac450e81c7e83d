"""The folder shows the architecture: the core at the top of numpyvae/, wings beside it.

The core (the modules a student reads along the data's path) imports nothing from a wing,
and no two modules import each other in a cycle. Both are read from the source with ``ast``,
so a function-local import counts as much as one at the top of a file.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "numpyvae"
CORE = {"layers", "reparam", "kl", "likelihoods", "model", "optim", "gradcheck", "_validate", "_rng",
        "_flat", "_registry", "family", "iwae",
        "_progress", "vqvae", "conv_layers", "conv", "priors"}
WINGS = {"data", "training", "theory", "teaching", "cli", "speed"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the numpyvae modules (or packages) that ``path`` imports."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("numpyvae")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("numpyvae"):
                continue
            found.add(mod)
            for a in node.names:  # `from . import kl` names a module
                if (PKG.parent / (mod + "." + a.name).replace(".", "/")).with_suffix(".py").exists() \
                        or (PKG.parent / (mod + "." + a.name).replace(".", "/")).is_dir():
                    found.add(mod + "." + a.name)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}


def test_the_core_sits_at_the_top_and_each_wing_is_a_folder():
    top = {p.stem for p in PKG.glob("*.py")} - {"__init__", "__main__"}
    assert top == CORE, f"modules at the top of numpyvae/ other than the core: {sorted(top - CORE)}"
    for wing in WINGS:
        assert (PKG / wing / "__init__.py").is_file(), f"wing numpyvae/{wing}/ is missing"


@pytest.mark.parametrize("core", sorted(CORE))
def test_the_core_imports_no_wing(core):
    imported = _imports(PKG / f"{core}.py")
    bad = sorted(m for m in imported if m.split(".")[1:2] and m.split(".")[1] in WINGS)
    assert not bad, f"numpyvae.{core} imports the wing module(s) {bad}"


def test_no_import_cycles():
    graph = _graph()
    # edges between modules only (a package's __init__ re-exports; it is not a cycle member)
    pkgs = {m for m in graph if (PKG.parent / m.replace(".", "/")).is_dir()}
    edges = {m: {t for t in deps if t in graph and t not in pkgs and t != m}
             for m, deps in graph.items() if m not in pkgs}
    # the search below finds no cycle in an empty graph: make sure the imports were read
    assert sum(map(len, edges.values())) > 50 and any("numpyvae.kl" in deps for deps in edges.values())
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_checker_sees_a_core_module_importing_a_wing(tmp_path, monkeypatch):
    # a fixture: a fake core module with a function-local import of a wing must be caught
    fake = PKG / "reparam.py"
    src = fake.read_text(encoding="utf-8") + "\n\ndef _leak():\n    from .training import trainer\n"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: src if self == fake
                        else Path.read_bytes(self).decode(encoding or "utf-8"))
    assert "numpyvae.training.trainer" in _imports(fake)


def test_every_command_line_module_is_short():
    """The command line is cut by what each part does: no module of numpyvae/cli/ grows past
    about 400 lines (450 at most) again."""
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (PKG / "cli").glob("*.py")}
    assert {"main.py", "parser.py", "train.py", "evaluate.py", "errors.py"} <= set(sizes)
    too_long = {name: n for name, n in sizes.items() if n > 450}
    assert not too_long, f"modules of numpyvae/cli/ over 450 lines: {too_long}"
