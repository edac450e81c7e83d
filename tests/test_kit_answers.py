"""No answer in the kit: with every exercise cut, nothing the kit hands out (its given code,
its notes' code and inline code) computes an exercise's gradient, a one-line body calling the
given code scores 0, the notes' checks run on the student's own file, and the instructors'
solutions never reach the kit. The manifest's "hidden" claim is this measurement."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from numpyvae.teaching import grader, leaks, stubs
from numpyvae.teaching.exercises import EXERCISES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return stubs.make_assignment(tmp_path_factory.mktemp("kit") / "hw").parent


def test_nothing_the_kit_hands_out_computes_an_answer(kit):
    found = leaks.find_answers(kit)
    assert set(found) == set(EXERCISES)
    assert not {e: how for e, how in found.items() if how}, found
    manifest = json.loads((kit / "assignment.json").read_text(encoding="utf-8"))
    assert manifest["answers"]["hidden"] is True and manifest["answers"]["found"] == {}


# one-line bodies that call only what the kit gives (each scored full marks before)
SHORTCUTS = {
    # the given Monte Carlo KL returned the partials of a Gaussian log-density
    "gaussian_learned_log_prob_grad": (
        '    raise NotImplementedError("Exercise 10: gaussian_learned_log_prob_grad is not '
        'implemented yet")\n',
        "    _, _, dmean, dlogvar = kl_monte_carlo(x, mean, logvar)\n"
        "    return dmean, dlogvar\n"),
    # LeakyReLU with slope 0 is ReLU
    "relu_backward": (
        '        raise NotImplementedError("Exercise 2: relu_backward is not implemented yet")\n',
        "        leaky = LeakyReLU(0.0)\n        leaky.forward(self.x)\n"
        "        return leaky.backward(dy)\n"),
}


@pytest.mark.parametrize("exercise", sorted(SHORTCUTS))
def test_a_body_calling_the_given_code_scores_zero(kit, tmp_path, exercise):
    old, new = SHORTCUTS[exercise]
    text = (kit / "student_vae.py").read_text(encoding="utf-8")
    assert text.count(old) == 1
    text = text.replace(old, new)
    if exercise == "relu_backward":       # keep x for the shortcut
        assert text.count("        self.y = np.maximum(x, 0)\n") == 1
        text = text.replace("    def forward(self, x):\n        self.y = np.maximum(x, 0)\n",
                            "    def forward(self, x):\n        self.x = x\n"
                            "        self.y = np.maximum(x, 0)\n", 1)
    path = tmp_path / "student_vae.py"
    path.write_text(text, encoding="utf-8")
    report = grader.grade(path, [exercise], hidden=True, student_id="shortcut")
    assert report.row(exercise).status != "pass" and report.points == 0, str(report)


def _blocks(kit):
    for f in sorted((kit / "notes").glob("*.md")):
        for line, code in leaks.code_blocks(f.read_text(encoding="utf-8")):
            yield f.name, line, code


def test_the_notes_checks_import_the_students_file(kit):
    blocks = list(_blocks(kit))
    assert blocks
    for name, line, code in blocks:
        assert not re.search(r"^\s*(import|from)\s+numpyvae\b|numpyvae as", code, re.M), \
            (name, line, code)
        if re.search(r"^\s*(import|from)\s", code, re.M) and "nv." in code:
            assert "student_vae" in code, (name, line)


def test_the_notes_checks_pass_on_the_answer_key(tmp_path):
    """The rewritten checks run from the kit's folder against the student's file: with the
    reference bodies filled in (an answer key) every one of them passes."""
    key = stubs.make_assignment(tmp_path / "key", solutions=True).parent
    seen = set()
    for name, line, code in _blocks(key):
        if code in seen or code.startswith("# check-exercise"):   # the notes' own exercises:
            continue                                                # the student fills answer()
        seen.add(code)
        proc = subprocess.run([sys.executable, "-c", code], cwd=key, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, (name, line, proc.stdout[-2000:], proc.stderr[-2000:])
        assert "wrong" not in proc.stdout, (name, line, proc.stdout[-2000:])


def test_the_instructors_solutions_never_reach_the_kit(tmp_path):
    notes = tmp_path / "derivations"
    shutil.copytree(ROOT / "derivations", notes)
    (notes / "solutions.md").write_text("# Solutions\n\nSECRET-WORKED-ANSWER\n", encoding="utf-8")
    kl = notes / "02_kl.md"
    kl.write_text(kl.read_text(encoding="utf-8") + (
        "\n## Exercises\n\n1. Derive (2.4). See [the worked answer](solutions.md#24).\n\n"
        "<!-- solutions -->\nSECRET-BLOCK-ANSWER\n<!-- /solutions -->\n\n"
        "<details><summary>Solution</summary>\n\nSECRET-DETAILS-ANSWER\n</details>\n\n"
        "### Solutions\n\nSECRET-SECTION-ANSWER\n\n## After\n\nkept\n"), encoding="utf-8")
    out = stubs.make_assignment(tmp_path / "hw", ["kl_normal_std_grad"], notes_dir=notes).parent
    assert not (out / "notes" / "solutions.md").exists()
    text = "".join(p.read_text(encoding="utf-8") for p in (out / "notes").glob("*.md"))
    assert "SECRET" not in text and "solutions.md" not in text
    assert "See the worked answer" in text and "kept" in text
