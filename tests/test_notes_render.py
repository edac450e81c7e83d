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
                problems.append(f"{where}: display line of {len(line)} chars (> {MAX_DISPLAY_LINE}); "
                                "break it into aligned steps")
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


# --------------------------------------------------------------------------- answer markers
#: exercise ids whose result the notes derive (COMMON brief); each must be wrapped somewhere
DERIVED_EXERCISES = ("linear_backward", "relu_backward", "tanh_backward", "sigmoid_backward",
                     "softplus_backward", "reparameterize_backward", "kl_normal_std_grad",
                     "bernoulli_log_prob_grad", "gaussian_log_prob_grad",
                     "gaussian_learned_log_prob_grad", "vae_backward")
_OPEN = re.compile(r"^\s*(?:# )?<!-- answer: ([a-z0-9_]+) -->\s*$")
_CLOSE = re.compile(r"^\s*(?:# )?<!-- /answer -->\s*$")


def answer_markers(text, name="<text>"):
    """(ids wrapped, problems): markers must be on their own lines, paired, never nested or empty."""
    ids, problems, open_id, open_line, body = [], [], None, 0, 0
    for no, line in enumerate(text.split("\n"), 1):
        if "<!-- answer" in line or "<!-- /answer" in line:
            m_open, m_close = _OPEN.match(line), _CLOSE.match(line)
            if m_open:
                if open_id is not None:
                    problems.append(f"{name}:{no}: answer '{m_open.group(1)}' opened inside '{open_id}' "
                                    f"(line {open_line})")
                open_id, open_line, body = m_open.group(1), no, 0
                ids.append(open_id)
            elif m_close:
                if open_id is None:
                    problems.append(f"{name}:{no}: '<!-- /answer -->' without an opening marker")
                elif body == 0:
                    problems.append(f"{name}:{no}: answer '{open_id}' wraps nothing")
                open_id = None
            else:
                problems.append(f"{name}:{no}: answer marker not on its own line")
        elif open_id is not None and line.strip():
            body += 1
    if open_id is not None:
        problems.append(f"{name}:{open_line}: answer '{open_id}' never closed")
    return ids, problems


def test_answer_marker_check_catches_broken_markers():
    broken = ("<!-- answer: a -->\n<!-- answer: b -->\nx\n<!-- /answer -->\n<!-- /answer -->\n"
              "text <!-- answer: c -->\n<!-- answer: d -->\n")
    _, problems = answer_markers(broken, "fixture")
    found = "\n".join(problems)
    for needle in ["opened inside", "without an opening", "not on its own line", "never closed"]:
        assert needle in found, found
    ids, problems = answer_markers("<!-- answer: relu_backward -->\n```math\ny\n```\n<!-- /answer -->\n")
    assert ids == ["relu_backward"] and problems == []


def test_notes_mark_every_derived_exercise():
    known = None
    try:
        from numpyvae.teaching.exercises import EXERCISES
        known = set(EXERCISES)
    except ImportError:  # the teaching wing is optional for the notes
        pass
    seen, problems = set(), []
    for path in NOTES:
        ids, probs = answer_markers(path.read_text(encoding="utf-8"), path.name)
        problems += probs
        seen |= set(ids)
        if known is not None:
            problems += [f"{path.name}: unknown exercise id '{i}'" for i in ids if i not in known]
    problems += [f"no note wraps the result of '{e}'" for e in DERIVED_EXERCISES if e not in seen]
    assert not problems, "\n".join(problems)


def test_graphical_model_figure_script_runs(tmp_path):
    """examples/10_graphical_model.py draws the figure embedded in the first note."""
    import importlib.util
    import matplotlib
    matplotlib.use("Agg")
    script = DERIV.parent / "examples" / "10_graphical_model.py"
    spec = importlib.util.spec_from_file_location("graphical_model_example", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path)])
    png = tmp_path / "graphical_model.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "graphical_model.png" in (DERIV / "01_generative_model.md").read_text(encoding="utf-8")
