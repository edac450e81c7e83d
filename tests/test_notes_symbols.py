"""One meaning per symbol: every note's use of the watched letters agrees with the notation table.

derivations/README.md keeps a notation table whose rows name a symbol, its one meaning and the
notes that use it with that meaning ("all" for every note). A note that must reuse a letter for
something else says so in a box that starts ``> **Local symbols.**`` and lists the letter in
``$...$``. The test reads the math of every note (inline ``$...$`` and ``math`` fences), finds
the watched letters, and fails when a note uses one the table does not give it and its box
does not declare; it also fails on the old clashing forms the notes once used.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from _helpers import note_formulas

DERIV = Path(__file__).resolve().parents[1] / "derivations"
NOTES = sorted(DERIV.glob("[0-9][0-9]_*.md")) if DERIV.is_dir() else []
pytestmark = pytest.mark.skipif(not DERIV.is_dir(), reason="derivations/ not present")

#: the letters a review found with two meanings; each must have one row in the table
WATCHED = ("b", "m", "u", "K", "c", "o", "G", "M", r"\bar y", r"\Delta", "w", r"\lambda")

_TEXTLIKE = re.compile(r"\\(?:text|mathrm|operatorname|mathbf|mathbb|mathcal|texttt|textbf)\s*\{[^{}]*\}")
_BAR_Y = re.compile(r"\\bar\s*\{?\s*y\b\}?")
_COMMAND = re.compile(r"\\[A-Za-z]+")
#: a letter under a tilde or hat is a symbol of its own (Adam's m-tilde is not m)
_ACCENTED = re.compile(r"\\(?:tilde|hat|widetilde|widehat)\s*\{?\s*[A-Za-z]\}?")


def math_segments(text):
    """The TeX of every formula of a note (the same reading as the render test's)."""
    return [tex for tex, _ in note_formulas(text)]


def symbols_in(tex):
    """The watched symbols a piece of TeX uses."""
    found = set()
    tex = _TEXTLIKE.sub(" ", tex)
    if _BAR_Y.search(tex):
        found.add(r"\bar y")
        tex = _BAR_Y.sub(" ", tex)
    for cmd in (r"\Delta", r"\lambda"):
        if re.search(re.escape(cmd) + r"(?![A-Za-z])", tex):
            found.add(cmd)
    tex = _ACCENTED.sub(" ", tex)
    tex = _COMMAND.sub(" ", tex)
    for letter in ("b", "m", "u", "K", "c", "o", "G", "M", "w"):
        if re.search(r"(?<![A-Za-z])" + letter + r"(?![A-Za-z])", tex):
            found.add(letter)
    return found


def symbols_used(text):
    found = set()
    for seg in math_segments(text):
        found |= symbols_in(seg)
    return found


def local_box(text):
    """Symbols a note declares in its '> **Local symbols.**' box (a run of '>' lines)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("> **Local symbols.**"):
            box = []
            for ln in lines[i:]:
                if not ln.startswith(">"):
                    break
                box.append(ln[1:])
            return symbols_used("\n".join(box))
    return set()


def notation_table(readme):
    """{symbol: set of note numbers or {'all'}} from the README's 'Notation' table."""
    _, _, tail = readme.partition("## Notation")
    table = {}
    for line in tail.split("\n")[1:]:
        if line.startswith("## "):
            break
        if not line.startswith("| ") or line.startswith("| symbol") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4:
            continue
        notes = {n.strip() for n in cells[3].split(",")}
        for sym in symbols_used(cells[0]):
            table.setdefault(sym, []).append(notes)
    return table


#: the forms the notes once used for a second meaning (old clash -> what replaced it)
OLD_CLASHES = {
    "K": [r"M\log K", r"codebook holds $K$"],
    "c": [r"c_{kb}", r"a = c ="],
    "o": [r"o_{ij}", r"\bar o"],
    "G": [r"G = \sum_k \bar z_k"],
    "M": [r"\sqrt{MK}", r"\sqrt{M/K}"],
    r"\bar y": [r"[z, \bar y]", r"[x, \bar y]", r"one-hot $\bar y$"],
    "m": [r"m\,\Delta", r"\beta_1 m +", r"\partial m_d", r"x_d - m_d", r"$m = \max_k"],
    "u": [r"\langle g, u\rangle", r"direction $u$"],
    "w": [r"w_t = \sum", r"w_j = u_j"],
    r"\lambda": [r"g + \lambda\theta", r"`weight_decay` $=\lambda$"],
    "b": [r"\sum_{b=1}^{B}\bar y_{b,:}"],
}


def symbol_problems(notes, readme):
    """Problems as strings (empty: every note agrees with the table or its own box)."""
    problems = []
    table = notation_table(readme)
    for sym in WATCHED:
        rows = table.get(sym, [])
        if len(rows) != 1:
            problems.append(f"README notation table: {sym!r} has {len(rows)} rows (want exactly one)")
    for name, text in notes:
        number = name[:2]
        box = local_box(text)
        used = symbols_used(text)
        for sym in WATCHED:
            if sym not in used or sym in box:
                continue
            rows = table.get(sym, [])
            if rows and ("all" in rows[0] or number in rows[0]):
                continue
            problems.append(f"{name}: uses {sym!r}, which the table does not give this note "
                            "and its Local symbols box does not declare")
        for sym, forms in OLD_CLASHES.items():
            if sym in box:
                continue
            for form in forms:
                if form in text:
                    problems.append(f"{name}: the old clashing use {form!r} of {sym!r}")
    return problems


def test_symbol_reader_finds_the_watched_letters():
    assert symbols_in(r"\bar y^\top \bar h + \lambda_j u_j + \mathrm{KL}_b") == {r"\bar y", r"\lambda", "u", "b"}
    assert symbols_in(r"\log\mathcal{N}(x; o, cI) \text{ for every } x") == {"o"}
    assert symbols_in(r"\sum_{k=1}^{K} w_k \Delta") == {"K", "w", r"\Delta"}
    assert symbols_in(r"\mathbb E_q \mu \mid \max \tilde m_t \hat w") == set()


def test_symbol_check_catches_a_clash_and_accepts_a_box():
    readme = ("## Notation\n\n| symbol | meaning | code | notes |\n|---|---|---|---|\n"
              + "".join(f"| ${s}$ | x | | 02 |\n" for s in WATCHED) + "\n## Next\n")
    clash = ("02_a.md", "Sum $\\sum_{k=1}^{K} w_k$ and $M\\log K$.\n")
    stray = ("03_b.md", "Uses $u$ here.\n")
    boxed = ("03_c.md", "> **Local symbols.** $u$ a unit vector.\n\nUses $u$ here.\n")
    problems = "\n".join(symbol_problems([clash, stray, boxed], readme))
    assert "old clashing use 'M\\\\log K'" in problems
    assert "03_b.md: uses 'u'" in problems
    assert "03_c.md" not in problems
    twice = readme.replace("| $b$ | x | | 02 |\n", "| $b$ | x | | 02 |\n| $b$ | y | | 03 |\n")
    assert "'b' has 2 rows" in "\n".join(symbol_problems([], twice))


def test_every_note_agrees_with_the_notation_table():
    readme = (DERIV / "README.md").read_text(encoding="utf-8")
    notes = [(p.name, p.read_text(encoding="utf-8")) for p in NOTES]
    problems = symbol_problems(notes, readme)
    assert not problems, "\n".join(problems)
