"""The notes render on GitHub: a lint for the constructs GitHub's Markdown breaks.

GitHub applies Markdown backslash escapes inside ``$...$`` before MathJax sees the text,
so ``\\,`` arrives as ``,`` and ``\\|`` as ``|``; ``$$`` blocks are parsed as Markdown too.
The notes therefore keep every display equation in a ```` ```math ```` fence (where the
text reaches MathJax untouched) and write inline math without escaped punctuation.
Each rule is checked on a broken fixture first, so the lint itself can fail.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

DERIV = Path(__file__).resolve().parents[1] / "derivations"
NOTES = sorted(DERIV.glob("*.md")) if DERIV.is_dir() else []

#: escapes that CommonMark consumes: a backslash before ASCII punctuation
_ESCAPED = re.compile(r"\\[!\"#$%&'()*+,\-./:;<=>?@\[\]^_`{|}~\\]")
_INLINE = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$(?!\$)")
MAX_DISPLAY_LINE = 200


def lint(text, name="<text>"):
    """Problems GitHub would show, as 'name:line: message' strings (empty list: clean)."""
    problems = []
    fence = None            # None, "math" or "code"
    for no, line in enumerate(text.split("\n"), 1):
        where = f"{name}:{no}"
        stripped = line.strip()
        if stripped.startswith("```"):
            if fence is None:
                fence = "math" if stripped == "```math" else "code"
            else:
                fence = None
            continue
        if fence == "math":
            if len(line) > MAX_DISPLAY_LINE:
                problems.append(f"{where}: display line of {len(line)} chars (> {MAX_DISPLAY_LINE}); break it into aligned steps")
            continue
        if fence == "code":
            continue
        if "$$" in line:
            problems.append(f"{where}: '$$' display math; use a ```math fence")
            continue
        if line.count("$") % 2:
            problems.append(f"{where}: unbalanced '$' (inline math must open and close on one line)")
        for m in _INLINE.finditer(line):
            body = m.group(1)
            for esc in sorted(set(_ESCAPED.findall(body))):
                problems.append(f"{where}: inline math uses '{esc}', which GitHub's Markdown eats")
            if body != body.strip():
                problems.append(f"{where}: inline math '${body}$' starts or ends with a space (not math on GitHub)")
            if "\\begin{" in body:
                problems.append(f"{where}: environment inside inline math; use a ```math fence")
        if line.count("}_") >= 2:
            problems.append(f"{where}: two or more '}}_' on one line (GitHub may read them as emphasis)")
    if fence is not None:
        problems.append(f"{name}: unclosed ``` fence")
    return problems


BROKEN = r"""A KL $\mathrm{KL}(q\,\|\,p)$ and $v = $ and a $\!x\;y$.

$$ a = b \tag{1.1} $$

And $\bar z_{kb}$ with $\mathrm{KL}_b$ and $\mathrm{x}_c$ too.

```math
""" + "x + " * 60 + "\n```\n"


def test_lint_catches_every_broken_construct():
    found = "\n".join(lint(BROKEN, "fixture"))
    for needle in ["'\\,'", "'\\|'", "'\\!'", "'\\;'", "starts or ends with a space", "'$$'",
                   "'}_'", "display line of"]:
        assert needle in found, f"lint missed {needle}:\n{found}"


def test_lint_passes_clean_text():
    clean = ("Inline $\\mathrm{KL}(q \\Vert p)$ and $p(z \\mid x)$.\n\n```math\n"
             "a = b \\, c \\\\ d \\tag{1.1}\n```\n")
    assert lint(clean) == []


@pytest.mark.parametrize("path", NOTES, ids=[p.name for p in NOTES])
def test_note_renders_on_github(path):
    problems = lint(path.read_text(encoding="utf-8"), path.name)
    assert not problems, "\n".join(problems)
