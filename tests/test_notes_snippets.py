"""The "Check it yourself" snippets at the end of each note run as printed.

A note whose snippet no longer runs against the package is a broken promise to the
student reading it, so every such block is executed here. The snippets print their
own comparisons; what this test asserts is that they run without error and that
every ``assert`` they contain holds.
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
