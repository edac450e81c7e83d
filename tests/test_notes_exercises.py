"""Every note's exercises can be checked, and every check runs.

Each numbered note 00-13 ends with ``## Exercises``: three to six derivations, each followed by a
Python check whose ``answer`` function the student fills in (the stub raises). derivations/solutions.md
holds the worked answer of every exercise, ending with the ``answer`` function. The tests run every
check three ways: with the stub (it must fail: the check cannot pass without an answer), with the
worked answer (it must pass: the check and the answer agree), and with the worked answer scaled
(``1.5 * answer + 0.1``; it must fail: the check can tell a wrong answer).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

DERIV = Path(__file__).resolve().parents[1] / "derivations"
pytestmark = pytest.mark.skipif(not DERIV.is_dir(), reason="derivations/ not present")

#: the notes that must carry exercises (notes written alongside, 14 on, may add their own)
REQUIRED = [f"{n:02d}" for n in range(14)]
_CHECK = re.compile(r"```python\n(# check-exercise (\d+\.\d+)\n.*?)```", re.S)
_ANSWER = re.compile(r"```python\n(# answer (\d+\.\d+)\n.*?)```", re.S)
_STUB = re.compile(r"^def answer\((.*?)\):\n    raise NotImplementedError\(.*?\)\n", re.M)
_STATEMENT = re.compile(r"^\*\*Exercise (\d+\.\d+)\.\*\* ", re.M)


def _notes():
    return sorted(p for p in DERIV.glob("[0-9][0-9]_*.md"))


def exercises(text):
    """{id: check code} of one note's Exercises section."""
    _, sep, tail = text.partition("\n## Exercises\n")
    return {eid: code for code, eid in _CHECK.findall(tail)} if sep else {}


def answers(text):
    return {eid: code for code, eid in _ANSWER.findall(text)}


def _cases():
    sol = (DERIV / "solutions.md").read_text(encoding="utf-8") if (DERIV / "solutions.md").is_file() else ""
    ans = answers(sol)
    for p in _notes():
        for eid, code in exercises(p.read_text(encoding="utf-8")).items():
            yield pytest.param(eid, code, ans.get(eid), id=f"{p.stem[:2]}-ex{eid}")


def with_answer(check, answer_code, mutate=False):
    """The check with its stub replaced by the worked answer (optionally made wrong)."""
    m = _STUB.search(check)
    assert m, "the check has no 'def answer(...): raise NotImplementedError(...)' stub"
    body = answer_code.split("\n", 1)[1]                 # drop the '# answer N.M' line
    if mutate:
        body = body.replace("def answer(", "def _worked(", 1) + (
            "\ndef answer(*args, **kwargs):\n"
            "    import numpy as _np\n"
            "    r = _worked(*args, **kwargs)\n"
            "    if isinstance(r, tuple):\n"
            "        return tuple(_np.asarray(v) * 1.5 + 0.1 for v in r)\n"
            "    return _np.asarray(r) * 1.5 + 0.1\n")
    return check[:m.start()] + body + "\n" + check[m.end():]


def _run(code, name):
    exec(compile(code, name, "exec"), {"__name__": "__exercise__"})


def test_every_note_has_three_to_six_checkable_exercises():
    problems = []
    seen = {p.stem[:2]: p for p in _notes()}
    for number in REQUIRED:
        p = seen.get(number)
        if p is None:
            problems.append(f"note {number} is missing")
            continue
        text = p.read_text(encoding="utf-8")
        checks = exercises(text)
        _, _, tail = text.partition("\n## Exercises\n")
        stated = _STATEMENT.findall(tail)
        if not 3 <= len(checks) <= 6:
            problems.append(f"{p.name}: {len(checks)} exercises (want 3 to 6)")
        if sorted(stated) != sorted(checks):
            problems.append(f"{p.name}: statements {stated} and checks {sorted(checks)} differ")
        prefix = str(int(number))
        problems += [f"{p.name}: exercise {e} is numbered for another note" for e in checks
                     if e.split(".")[0] != prefix]
    assert not problems, "\n".join(problems)


def test_solutions_answer_every_exercise_and_nothing_else():
    sol = answers((DERIV / "solutions.md").read_text(encoding="utf-8"))
    asked = {eid for p in _notes() for eid in exercises(p.read_text(encoding="utf-8"))}
    assert asked, "no exercises found"
    assert set(sol) == asked, f"unanswered: {sorted(asked - set(sol))}; unasked: {sorted(set(sol) - asked)}"


def test_the_harness_can_fail():
    check = ("# check-exercise 9.9\nimport numpy as np\n\ndef answer(a):\n"
             "    raise NotImplementedError(\"x\")\n\nassert answer(2.0) == 4.0\n")
    with pytest.raises(NotImplementedError):
        _run(check, "stub")
    _run(with_answer(check, "# answer 9.9\ndef answer(a):\n    return a * a\n"), "right")
    with pytest.raises(AssertionError):
        _run(with_answer(check, "# answer 9.9\ndef answer(a):\n    return a + a + 1\n"), "wrong")
    with pytest.raises(AssertionError):
        _run(with_answer(check, "# answer 9.9\ndef answer(a):\n    return a * a\n", mutate=True), "mutant")


@pytest.mark.parametrize("eid, check, answer_code", list(_cases()))
def test_exercise_check_runs(eid, check, answer_code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert answer_code is not None, f"solutions.md has no answer for exercise {eid}"
    with pytest.raises(NotImplementedError):
        _run(check, f"exercise {eid} (stub)")
    _run(with_answer(check, answer_code), f"exercise {eid} (worked answer)")
    with pytest.raises(Exception):  # noqa: B017 - a wrong answer may fail any way, not only by assert
        _run(with_answer(check, answer_code, mutate=True), f"exercise {eid} (wrong answer)")
