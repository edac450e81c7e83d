"""Build a Gradescope autograder zip from an assignment folder.

The zip holds ``setup.sh`` (two virtual environments: the grader's, root only, with the
bundled numpyvae source and every dependency; the students', NumPy only; and the
unprivileged user submissions run as), ``run_autograder`` (``numpyvae.teaching.cli
autograde``: grades the submission for every member of the group and writes
``/autograder/results/results.json``, checked; a results file that says the autograder
failed when anything goes wrong), the manifest and a copy of the numpyvae package source
it was made with. This module also writes and checks Gradescope's results.json.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

from .stubs import MANIFEST_FILE, package_version

__all__ = ["build_autograder"]

VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")
STUDENT_USER = "numpyvae-student"

# Both scripts take AUTOGRADER_ROOT (default /autograder), so they can be tried, and tested,
# in any folder. Everything lives under it: the grader's environment (root only, holding
# numpyvae) and the students' (NumPy only; the submission's interpreter).
_SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SRC="$ROOT/source"
cd "$ROOT"
# python3 with venv and pip: installed only when missing (stock Ubuntu 22.04 and 24.04 lack venv)
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -y
  apt-get install -y python3 python3-venv python3-pip
fi
# Virtual environments, never the system's pip: Ubuntu 24.04 refuses system installs and
# Ubuntu 22.04's pip 22 has no --break-system-packages.
python3 -m venv "$ROOT/numpyvae-grader"
"$ROOT/numpyvae-grader/bin/python" -m pip install --quiet --upgrade pip
"$ROOT/numpyvae-grader/bin/python" -m pip install --quiet "$SRC/numpyvae_src"
NUMPY=$("$ROOT/numpyvae-grader/bin/python" -c "import numpy; print(numpy.__version__)")
python3 -m venv "$ROOT/numpyvae-student"
"$ROOT/numpyvae-student/bin/python" -m pip install --quiet "numpy==$NUMPY"
# the checks run_autograder relies on: the grader imports, the student side cannot
"$ROOT/numpyvae-grader/bin/python" -c "import numpyvae.teaching.grader, threadpoolctl"
if "$ROOT/numpyvae-student/bin/python" -I -c "import numpyvae" >/dev/null 2>&1; then
  echo "setup.sh: numpyvae is importable from the student environment" >&2; exit 1
fi
# the unprivileged user submissions run as
if ! id -u {user} >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \\
    --user-group {user} || echo "setup.sh: could not create the user {user}" >&2
fi
# root only: the grader's environment, the source (manifest, seed) and the results
chmod 0700 "$ROOT/numpyvae-grader" "$SRC"
chmod -R go-rwx "$ROOT/numpyvae-grader"
chmod -R go+rX "$ROOT/numpyvae-student"
echo "setup.sh: the autograder is installed in $ROOT"
"""

_RUN = """#!/usr/bin/env bash
# Gradescope runs this (as root) for every submission. It never ends without a valid
# results.json: when the grader itself fails, the file says so (0 points) and the exit
# status is 1. AUTOGRADER_ROOT (default /autograder) lets you try it on your own machine.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
RESULTS="$ROOT/results/results.json"
PY="$ROOT/numpyvae-grader/bin/python"
[ -x "$PY" ] || PY=python3
if [ -x "$ROOT/numpyvae-student/bin/python" ]; then
  export NUMPYVAE_STUDENT_PYTHON="$ROOT/numpyvae-student/bin/python"
fi
mkdir -p "$ROOT/results"
chmod 0700 "$ROOT/results" 2>/dev/null
rm -f "$RESULTS"
cd "$ROOT"
"$PY" -m numpyvae.teaching.cli autograde --root "$ROOT" --manifest "$ROOT/source/{manifest}"
if "$PY" -m numpyvae.teaching.gradescope --check "$RESULTS" 2>/dev/null; then
  exit 0
fi
MSG="The autograder itself failed (not your code). The course staff can see why; resubmit later."
printf '{{"score": 0.0, "output": "%s", "visibility": "visible", "tests": []}}\\n' "$MSG" \\
  > "$RESULTS.tmp"
mv -f "$RESULTS.tmp" "$RESULTS"
exit 1
"""

_PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "numpyvae"
version = "{version}"
requires-python = ">=3.10"
dependencies = {dependencies}

[project.scripts]
numpyvae = "numpyvae.cli:main"

[tool.setuptools.packages.find]
include = ["numpyvae*"]

[tool.setuptools.package-data]
"numpyvae.data" = ["*.gz", "*.txt", "*.md"]
"""

# what numpyvae needs at run time (the project's own list is read when it can be)
_NEEDS = ("numpy>=1.23", "matplotlib>=3.5", "tqdm>=4.60", "threadpoolctl>=3.1")


def dependencies() -> list:
    """numpyvae's run-time requirements: its installed metadata, else its pyproject, else
    the list above; never fewer than the list above."""
    import re
    found = []
    try:
        from importlib.metadata import requires
        found = [r for r in (requires("numpyvae") or []) if "extra ==" not in r]
    except Exception:       # noqa: BLE001 - not installed: try the source checkout
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not found and pyproject.is_file():
        m = re.search(r"^dependencies\s*=\s*\[(.*?)\]", pyproject.read_text(encoding="utf-8"),
                      re.S | re.M)
        if m:
            found = re.findall(r'"([^"]+)"', m.group(1))
    names = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in found}
    return found + [n for n in _NEEDS if re.split(r"[<>=]", n)[0] not in names]


# --------------------------------------------------------------------------- results.json
def _visibility(visibility, exercise):
    v = visibility.get(exercise) if isinstance(visibility, dict) else visibility
    return v if v in VISIBILITIES else "visible"


def results_json(report, visibility=None) -> dict:
    """Gradescope's results.json for a ``GradeReport``.

    One test per exercise, named by the exercise alone (the name never changes between
    submissions; pass or fail is in ``status``), with the manifest's visibility
    (``visible``, ``after_due_date``, ``after_published``, ``hidden``: a str for every
    exercise or {id: visibility}). The notes for the course staff (``report.review``) go
    in a test of 0 points with visibility ``hidden``: Gradescope shows it to
    instructors and TAs, never to the student. ``execution_time`` is the seconds the
    student's code ran. Strict JSON: no NaN or Infinity.
    """
    from .jsonfile import _finite
    tests = []
    for i, r in enumerate(report.results, 1):
        tests.append({"name": r.exercise, "name_format": "text", "number": str(i),
                      "score": r.score, "max_score": r.max_score,
                      "status": "passed" if r.status == "pass" else "failed",
                      "output": (r.message or "passed") if r.status == "pass" or r.message
                      else r.status, "output_format": "text",
                      "visibility": _visibility(visibility, r.exercise),
                      "extra_data": {"status": r.status, "max_error": r.max_error,
                                     "execution_time": round(r.execution_time, 4)}})
    if report.review:
        tests.append({"name": "Notes for the course staff (not scored)", "name_format": "text",
                      "score": 0.0, "max_score": 0.0, "status": "passed",
                      "output": "\n".join(f"[{n['kind']}]" + (f" {n['exercise']}:" if
                                          n.get("exercise") else "") + f" {n['message']}"
                                          for n in report.review),
                      "output_format": "text", "visibility": "hidden",
                      "extra_data": {"review": list(report.review)}})
    return _finite({
        "score": report.points, "execution_time": round(report.execution_time, 3),
        "output": (f"{report.found}\n" if getattr(report, "found", "") else "")
        + f"{report.score} exercises passed, {report.points:g} / {report.max_points:g} "
          f"points (a gradient passes when its relative error is below "
          f"{report.threshold:.0e})", "output_format": "text",
        "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
        "extra_data": {"student_id": report.student_id,
                       "grading_time": round(getattr(report, "grading_time", 0.0), 3)}})


def failure_results(message: str) -> dict:
    """A results.json for when the autograder itself failed: 0 points, and it says so."""
    return {"score": 0.0, "output": "The autograder itself failed (not your code). The course "
            "staff can see why; resubmit later or contact them.", "output_format": "text",
            "visibility": "visible", "stdout_visibility": "hidden",
            "tests": [{"name": "Autograder failure (for the course staff)", "score": 0.0,
                       "max_score": 0.0, "status": "failed", "output": message[-4000:],
                       "visibility": "hidden"}]}


def check_results(data) -> str:
    """'' if ``data`` is a results.json Gradescope accepts, else what is wrong."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if not isinstance(data.get("tests", []), list):
        return "tests is not a list"
    if "score" not in data and not all("score" in t for t in data.get("tests", [])):
        return "no score (neither at the top nor on every test)"
    if "score" in data and not (isinstance(data["score"], (int, float))
                                and not isinstance(data["score"], bool)):
        return "score is not a number"
    for i, t in enumerate(data.get("tests", [])):
        if not isinstance(t, dict):
            return f"tests[{i}] is not an object"
        for k in ("score", "max_score"):
            if k in t and not isinstance(t[k], (int, float)):
                return f"tests[{i}].{k} is not a number"
        if t.get("visibility", "visible") not in VISIBILITIES:
            return f"tests[{i}].visibility is {t.get('visibility')!r}"
        if t.get("status", "passed") not in ("passed", "failed"):
            return f"tests[{i}].status is {t.get('status')!r}"
    if data.get("visibility", "visible") not in VISIBILITIES:
        return f"visibility is {data.get('visibility')!r}"
    return ""


def write_checked(path, data) -> Path:
    """Write ``data`` atomically, read it back and check it; raise if it is not what was
    written (something else wrote the file) or not a valid results.json."""
    import json
    from .jsonfile import _finite, write_json
    problem = check_results(data)
    if problem:
        raise ValueError(f"results.json would be invalid: {problem}")
    write_json(path, data)
    back = json.loads(Path(path).read_text(encoding="utf-8"))
    if back != json.loads(json.dumps(_finite(data), allow_nan=False)):
        raise RuntimeError(f"{path} changed after it was written")
    return Path(path)


def group_report(reports):
    """One report for a group submission graded on every member's hidden cases: each
    exercise scores its lowest score over the members (the work must be right for all)."""
    first = reports[0]
    if len(reports) == 1:
        return first
    from copy import deepcopy
    out = deepcopy(first)
    out.student_id = ", ".join(str(r.student_id) for r in reports)
    for i, row in enumerate(out.results):
        worst = min((r.results[i] for r in reports), key=lambda x: x.score)
        who = next(r.student_id for r in reports if r.results[i] is worst)
        if worst.score < row.score or (worst.status != "pass" and row.status == "pass"):
            out.results[i] = deepcopy(worst)
            out.results[i].message = f"on {who}'s cases: {worst.message}"
    seen = set()
    out.review = []
    for r in reports:
        for n in r.review:
            key = (n["kind"], n.get("exercise"), n["message"])
            if key not in seen:
                seen.add(key)
                out.review.append(n)
    out.execution_time = max(r.execution_time for r in reports)
    return out


def build_autograder(assignment_dir, out, force=False) -> Path:
    """Write the autograder zip for the kit in ``assignment_dir`` to ``out``."""
    kit = Path(assignment_dir)
    manifest_path = kit / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(f"assignment_dir must hold {MANIFEST_FILE} (made by 'assignment make'), "
                         f"got {kit}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["file"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"manifest: cannot read {manifest_path} ({exc})") from None
    if manifest.get("solutions"):
        raise ValueError("this kit was made with --solutions (an answer key); make the "
                         "student kit without it for Gradescope")
    out = Path(out)
    if out.exists() and not force:
        raise ValueError(f"out {out} exists; pass --force to overwrite it")
    pkg = Path(__file__).resolve().parent.parent
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", suffix=".zip.tmp")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", _SETUP.format(user=STUDENT_USER)),
                           ("run_autograder", _RUN.format(manifest=MANIFEST_FILE))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
        z.write(manifest_path, MANIFEST_FILE)
        z.writestr("numpyvae_src/pyproject.toml", _PYPROJECT.format(
            version=package_version(), dependencies=json.dumps(dependencies())))
        for f in sorted(pkg.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                z.write(f, "numpyvae_src/numpyvae/" + f.relative_to(pkg).as_posix())
    os.replace(tmp, out)
    return out


def _main(argv) -> int:
    """``python -m numpyvae.teaching.gradescope --check results.json``: 0 if valid."""
    import json
    if len(argv) != 2 or argv[0] != "--check":
        print("usage: python -m numpyvae.teaching.gradescope --check RESULTS_JSON")
        return 2
    try:
        problem = check_results(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        problem = str(exc)
    if problem:
        print(f"{argv[1]}: {problem}")
    return 1 if problem else 0


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv[1:]))
