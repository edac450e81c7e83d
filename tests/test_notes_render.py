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
from _helpers import CODE_SPAN as _CODE_SPAN
from _helpers import INLINE_MATH as _INLINE
from _helpers import note_formulas

DERIV = Path(__file__).resolve().parents[1] / "derivations"
NOTES = sorted(DERIV.glob("*.md")) if DERIV.is_dir() else []

#: escapes that CommonMark consumes: a backslash before ASCII punctuation
_ESCAPED = re.compile(r"\\[!\"#$%&'()*+,\-./:;<=>?@\[\]^_`{|}~\\]")
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


# --------------------------------------------------------------------------- structure
_TAG = re.compile(r"\\tag\{(\d+)\.(\d+)\}")
_NUMBERED = re.compile(r"^#{2,3} (\d+)\.(\d+)(?:–(\d+)\.(\d+))? ")
_NUMBERED_NOTES = [p for p in NOTES if re.match(r"\d\d_", p.name)]


def structure_problems(text, name):
    """Tags in order without gaps, each inside the numbered section it belongs to; no math in headings."""
    problems, tags, section, fence = [], [], None, False
    number = int(name[:2])
    for no, line in enumerate(text.split("\n"), 1):
        if line.strip().startswith("```"):
            fence = not fence
        if not fence and line.startswith("#"):
            if "$" in line:
                problems.append(f"{name}:{no}: math in a heading (its link anchor breaks)")
            m = _NUMBERED.match(line)
            if m:
                a = (int(m.group(1)), int(m.group(2)))
                b = (int(m.group(3)), int(m.group(4))) if m.group(3) else a
                if a[0] != number:
                    problems.append(f"{name}:{no}: section {a[0]}.{a[1]} in note {number}")
                section = (a, b)
            elif line.startswith("## ") or line.startswith("### "):
                section = None
        for t in _TAG.findall(line):
            tag = (int(t[0]), int(t[1]))
            tags.append(tag)
            if tag[0] != number:
                problems.append(f"{name}:{no}: tag ({tag[0]}.{tag[1]}) in note {number}")
            if section and not (section[0] <= tag <= section[1]):
                problems.append(f"{name}:{no}: tag ({tag[0]}.{tag[1]}) inside section "
                                f"{section[0][0]}.{section[0][1]}, whose number it contradicts")
    seconds = [t[1] for t in tags]
    if seconds != list(range(1, len(seconds) + 1)):
        problems.append(f"{name}: tags run {seconds}, not 1, 2, 3, ... in order")
    return problems


def test_structure_check_catches_disorder_gaps_clashes_and_math_headings():
    broken = ("# 3. Note\n\n## 3.1 First\n\n```math\na \\tag{3.2}\n```\n\n```math\nb \\tag{3.1}\n```\n\n"
              "## Route $q$\n\n```math\nc \\tag{3.4}\n```\n")
    found = "\n".join(structure_problems(broken, "03_x.md"))
    for needle in ["math in a heading", "tags run [2, 1, 4]", "tag (3.2) inside section 3.1"]:
        assert needle in found, found
    clean = "# 3. Note\n\n## 3.1–3.2 Two\n\n```math\na \\tag{3.1}\n```\n\n```math\nb \\tag{3.2}\n```\n"
    assert structure_problems(clean, "03_x.md") == []


@pytest.mark.parametrize("path", _NUMBERED_NOTES, ids=[p.name for p in _NUMBERED_NOTES])
def test_note_numbers_agree(path):
    problems = structure_problems(path.read_text(encoding="utf-8"), path.name)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- a model of GitHub's pass
_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _unescape(body):
    """What CommonMark leaves of a text after its backslash escapes (GitHub does this inside $...$)."""
    return re.sub(r"\\([!\"#$%&'()*+,\-./:;<=>?@\[\]^_`{|}~\\])", r"\1", body)


def _runs(text, ch):
    """(start, end, can_open, can_close) of each run of ch, by CommonMark's flanking rules."""
    out = []
    for m in re.finditer(re.escape(ch) + "+", text):
        before = text[m.start() - 1] if m.start() > 0 else " "
        after = text[m.end()] if m.end() < len(text) else " "
        left = not after.isspace() and (after not in _PUNCT or before.isspace() or before in _PUNCT)
        right = not before.isspace() and (before not in _PUNCT or after.isspace() or after in _PUNCT)
        if ch == "_":
            can_open = left and (not right or before in _PUNCT)
            can_close = right and (not left or after in _PUNCT)
        else:
            can_open, can_close = left, right
        out.append((m.start(), m.end(), can_open, can_close))
    return out


def github_alterations(text, name="<text>"):
    """Inline formulas GitHub's Markdown pass would change before the math renderer sees them.

    The model: a paragraph's code spans are left alone; in the rest, the text between two '$'
    reaches the renderer after CommonMark's backslash escapes are applied, and an '_' or '*' inside
    a formula is lost to emphasis when CommonMark's flanking rules let it pair with another one of
    the same paragraph.
    """
    problems, fence, para = [], False, []

    def flush():
        if not para:
            return
        start = para[0][0]
        joined = "\n".join(line for _, line in para)
        masked = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), joined)
        spans = [(m.start(1), m.end(1)) for m in _INLINE.finditer(masked)]
        for a, b in spans:
            body = masked[a:b]
            if _unescape(body) != body:
                line = start + masked[:a].count("\n")
                problems.append(f"{name}:{line}: GitHub would pass ${_unescape(body)}$ for ${body}$")
        # emphasis across the paragraph (escaped delimiters are literal, so blank them first)
        plain = re.sub(r"\\[_*]", "  ", masked).replace("$", " ")
        for ch in "_*":
            runs = _runs(plain, ch)
            for i, (s1, _, op, _) in enumerate(runs):
                if not op:
                    continue
                for s2, _, _, cl in runs[i + 1:]:
                    if cl and any(a <= s1 < b or a <= s2 < b for a, b in spans):
                        line = start + plain[:s1].count("\n")
                        problems.append(f"{name}:{line}: '{ch}' in a formula can pair with a later '{ch}' "
                                        "as emphasis")
                        break
        para.clear()

    for no, line in enumerate(text.split("\n"), 1):
        if line.strip().startswith("```"):
            flush()
            fence = not fence
            continue
        if fence:
            continue
        if re.match(r"\s*([*+-]|\d+\.|>)\s", line):   # a list item or quote starts its own block
            flush()
        if not line.strip() or line.startswith("#") or line.startswith("|"):
            flush()
            if line.startswith("|"):      # a table row is its own block
                para.append((no, line))
                flush()
            continue
        para.append((no, line))
    flush()
    return problems


def test_github_model_sees_escapes_and_emphasis():
    assert github_alterations("A $a\\,b$ here.") != []
    assert github_alterations("Sum $x_{1}$ and $y_{2}$ and *z*.") == []
    assert github_alterations("Pair $a*b$ and $c*d$.") != []          # '*b$ and $c*' reads as emphasis
    assert github_alterations("In code `$a\\,b$` it is left alone.") == []
    assert github_alterations("Fine $\\alpha + \\beta_j$.") == []
    assert github_alterations("Mean $\\overline{K}_j$ and\nthen $\\mu_{ij}$.") != []   # one paragraph
    assert github_alterations("* Mean $\\overline{K}_j$ and\n* then $\\mu_{ij}$.") == []   # two items


@pytest.mark.parametrize("path", NOTES, ids=[p.name for p in NOTES])
def test_github_leaves_every_formula_alone(path):
    problems = github_alterations(path.read_text(encoding="utf-8"), path.name)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- KaTeX
KATEX = DERIV.parent / "docs" / "site" / "assets" / "katex" / "katex.min.js"


formulas = note_formulas


def katex_errors(items):
    """KaTeX's error for each (tex, display), '' when it renders; None when no JavaScript engine runs."""
    import json
    import shutil
    import subprocess
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None or not KATEX.is_file():
        return None
    script = (f"const katex = require({json.dumps(str(KATEX))});\n"
              "let s = ''; process.stdin.on('data', d => s += d);\n"
              "process.stdin.on('end', () => { const items = JSON.parse(s);\n"
              "  process.stdout.write(JSON.stringify(items.map(it => {\n"
              "    try { katex.renderToString(it[0], {displayMode: it[1], throwOnError: true}); return ''; }\n"
              "    catch (e) { return String(e.message || e); } }))); });\n")
    r = subprocess.run([node, "-e", script], input=json.dumps(items), capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def test_katex_check_rejects_a_broken_formula():
    errors = katex_errors([["\\frac12 \\sum_j e^{v_j} \\tag{3.3}", True], ["\\frac{1}{2", False],
                           ["\\notacommand x", False]])
    if errors is None:
        pytest.skip("no Node.js to run the bundled KaTeX")
    assert errors[0] == "" and errors[1] and errors[2]


def test_every_formula_of_the_notes_renders_in_katex():
    items, where = [], []
    for path in NOTES:
        for tex, display in formulas(path.read_text(encoding="utf-8")):
            items.append([tex, display])
            where.append(path.name)
    assert len(items) > 1000, f"only {len(items)} formulas found"
    errors = katex_errors(items)
    if errors is None:
        pytest.skip("no Node.js to run the bundled KaTeX")
    bad = [f"{w}: {tex[:80]!r}: {err}" for w, (tex, _), err in zip(where, items, errors) if err]
    assert not bad, "\n".join(bad[:20])
