"""The "Check it yourself" snippets at the end of each note run, and assert what they claim.

A note whose snippet no longer runs against the package is a broken promise to the
student reading it, so every such block is executed here. Each snippet states its claims
as ``assert`` lines (a printed comparison checks nothing), so a snippet fails when the
claim it demonstrates stops holding.
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

DERIV = Path(__file__).resolve().parents[1] / "derivations"
NOTES = sorted(DERIV.glob("[0-9][0-9]_*.md")) if DERIV.is_dir() else []


def _snippets(path):
    text = path.read_text(encoding="utf-8")
    _, _, tail = text.partition("## Check it yourself")
    tail, _, _ = tail.partition("## Exercises")      # exercise checks need the student's answer
    return re.findall(r"```python\n(.*?)```", tail, re.S)


def test_every_note_has_a_snippet():
    assert NOTES, "derivations/ has no numbered notes"
    missing = [p.name for p in NOTES if not _snippets(p)]
    assert not missing, f"notes without a 'Check it yourself' python block: {missing}"


@pytest.mark.parametrize("path", NOTES, ids=[p.stem for p in NOTES])
def test_snippet_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for code in _snippets(path):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{path.name}:check-it-yourself", "exec"), {"__name__": "__snippet__"})
        assert "nan" not in out.getvalue().lower().split(), out.getvalue()


def _asserts_its_claims(code):
    """Problems with a snippet's checking: it must assert, and must not merely print."""
    problems = []
    if not re.search(r"^\s*assert\b", code, re.M):
        problems.append("has no assert")
    if re.search(r"^\s*print\(", code, re.M):
        problems.append("prints a comparison instead of asserting it")
    return problems


def test_the_assert_rule_catches_a_printing_snippet():
    assert _asserts_its_claims("x = 1\nprint(x == 1)\n") == [
        "has no assert", "prints a comparison instead of asserting it"]
    assert _asserts_its_claims("x = 1\nassert x == 1\n") == []


@pytest.mark.parametrize("path", NOTES, ids=[p.stem for p in NOTES])
def test_snippet_asserts_its_claims(path):
    problems = [f"{path.name}: {msg}" for code in _snippets(path) for msg in _asserts_its_claims(code)]
    assert not problems, "\n".join(problems)
