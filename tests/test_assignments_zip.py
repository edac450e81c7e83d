"""The Gradescope zip, exactly as generated, installed and run the way Gradescope does.

The zip is built, unpacked into a fresh autograder root (``AUTOGRADER_ROOT`` stands for
``/autograder``), installed by its own ``setup.sh`` with the machine's own ``python3``
(new virtual environments: nothing is shared with the test's environment), and its
``run_autograder`` grades a correct, a wrong and an empty submission in Gradescope's
layout. Each results.json is checked against Gradescope's documented format.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from numpyvae.teaching import cli, gradescope, isolation, stubs

EXERCISES = ["relu_backward", "kl_normal_std_grad"]
TOP = {"score", "execution_time", "output", "output_format", "visibility",
       "stdout_visibility", "extra_data", "tests", "leaderboard", "test_output_format",
       "test_name_format"}
TEST = {"score", "max_score", "status", "name", "name_format", "number", "output",
        "output_format", "tags", "visibility", "extra_data"}


def _gradescope_format(data):
    """Gradescope's results.json, as its autograder specification documents it."""
    assert set(data) <= TOP, set(data) - TOP
    assert isinstance(data["score"], (int, float)) and not isinstance(data["score"], bool)
    assert isinstance(data.get("execution_time", 0), (int, float))
    assert data.get("visibility", "visible") in gradescope.VISIBILITIES
    assert data.get("stdout_visibility", "hidden") in gradescope.VISIBILITIES
    assert isinstance(data["tests"], list)
    for t in data["tests"]:
        assert set(t) <= TEST, set(t) - TEST
        assert isinstance(t["name"], str) and isinstance(t["output"], str)
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float))
        assert 0 <= t["score"] <= t["max_score"] or t["max_score"] == 0
        assert t["status"] in ("passed", "failed")
        assert t["visibility"] in gradescope.VISIBILITIES
    assert gradescope.check_results(data) == ""


def _system_python():
    for p in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(p) and subprocess.run([p, "-c", "import venv, ensurepip"],
                                                capture_output=True).returncode == 0:
            return p
    return None


@pytest.mark.slow
@pytest.mark.skipif(not isolation.is_root() or _system_python() is None,
                    reason="setup.sh runs as root (as on Gradescope) with the system's python3")
def test_the_zip_as_generated_installs_and_grades(tmp_path):
    kit, key = tmp_path / "hw", tmp_path / "key"
    assert cli.main(["make", str(kit), "--exercises", ",".join(EXERCISES),
                     "--visibility", "kl_normal_std_grad=after_due_date"]) == 0
    key = stubs.make_assignment(key, EXERCISES, solutions=True)     # the answer key's file
    zpath = tmp_path / "autograder.zip"
    assert cli.main(["gradescope", str(kit), "--out", str(zpath)]) == 0
    root = Path(tempfile.mkdtemp(prefix="numpyvae-autograder-"))
    try:
        os.chmod(root, 0o755)
        with zipfile.ZipFile(zpath) as z:
            z.extractall(root / "source")
        shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
        env = {"PATH": f"{os.path.dirname(_system_python())}:/usr/bin:/bin:/usr/sbin:/sbin",
               "AUTOGRADER_ROOT": str(root), "HOME": str(root), "LANG": "C.UTF-8"}
        for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT",
                  "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
            if k in os.environ:            # how this machine reaches a package index
                env[k] = os.environ[k]
        setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env,
                               capture_output=True, text=True, timeout=900)
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]

        def run(submission_text, users):
            shutil.rmtree(root / "submission", ignore_errors=True)
            (root / "submission").mkdir()
            if submission_text is not None:
                (root / "submission" / "student_vae.py").write_text(submission_text)
            (root / "submission_metadata.json").write_text(json.dumps({"users": users}))
            out = subprocess.run(["bash", str(root / "run_autograder")], env=env,
                                 capture_output=True, text=True, timeout=300, cwd=root)
            data = json.loads((root / "results" / "results.json").read_text())
            _gradescope_format(data)
            assert out.returncode == 0, out.stdout + out.stderr
            return data, out.stdout

        correct = key.read_text(encoding="utf-8")
        good, stdout = run(correct, [{"email": "ann@uni.edu"}, {"email": "bob@uni.edu"}])
        assert good["score"] == 2.0, good
        assert "ann@uni.edu, bob@uni.edu" in stdout            # graded for both members
        assert "WARNING" not in stdout                          # every protection on
        wrong_text = correct.replace("return dy * (self.y > 0)", "return 2 * dy * (self.y > 0)")
        assert wrong_text != correct
        wrong, _ = run(wrong_text, [{"email": "cy@uni.edu"}])
        assert wrong["score"] == 1.0
        empty, _ = run(None, [{"email": "dee@uni.edu"}])
        assert empty["score"] == 0.0
        for data in (good, wrong, empty):
            names = [t["name"] for t in data["tests"]][:2]
            assert names == EXERCISES                          # the same names every time
            assert [t["visibility"] for t in data["tests"]][:2] == ["visible", "after_due_date"]
        assert [t["status"] for t in wrong["tests"]][:2] == ["failed", "passed"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_run_autograder_never_ends_without_a_valid_results_file(tmp_path):
    """The grader cannot even start (no numpyvae for its python3): results.json says so."""
    kit = tmp_path / "hw"
    assert cli.main(["make", str(kit), "--exercises", "relu_backward"]) == 0
    assert cli.main(["gradescope", str(kit), "--out", str(tmp_path / "a.zip")]) == 0
    root = tmp_path / "ag"
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        z.extractall(root / "source")
    (root / "submission").mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").write_text("#!/bin/sh\nexit 3\n")       # a broken interpreter
    (bindir / "python3").chmod(0o755)
    out = subprocess.run(["bash", str(root / "source" / "run_autograder")],
                         env={"PATH": f"{bindir}:/usr/bin:/bin", "AUTOGRADER_ROOT": str(root)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    data = json.loads((root / "results" / "results.json").read_text())
    assert data["score"] == 0 and "autograder itself failed" in data["output"]
    _gradescope_format(data)


def test_the_bundled_pyproject_lists_every_dependency(tmp_path):
    kit = tmp_path / "hw"
    assert cli.main(["make", str(kit), "--exercises", "relu_backward"]) == 0
    assert cli.main(["gradescope", str(kit), "--out", str(tmp_path / "a.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        text = z.read("numpyvae_src/pyproject.toml").decode()
        setup = z.read("setup.sh").decode()
    for dep in ("numpy", "matplotlib", "tqdm", "threadpoolctl"):
        assert f'"{dep}' in text, text
    commands = [ln for ln in setup.splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in commands if "--break-system-packages" in ln]    # pip 22 lacks it
    assert any("-m venv" in ln for ln in commands)


def test_results_json_carries_visibility_staff_notes_and_the_students_own_time(tmp_path):
    """Fast, without setup.sh: the pieces of results.json a TA relies on."""
    sub = tmp_path / "slow_relu.py"
    sub.write_text(
        "import time\nimport numpy as np\nimport importlib\n\n\nclass ReLU:\n"
        "    def forward(self, x):\n        self.y = np.maximum(x, 0)\n        return self.y\n\n"
        "    def backward(self, dy):\n        time.sleep(0.05)\n        return dy * (self.y > 0)\n")
    res = tmp_path / "results" / "results.json"
    assert cli.main(["grade", str(sub), "--exercises", "relu_backward,kl_backward",
                     "--student-id", "ann", "--student-id", "bob", "--gradescope", str(res)]) == 1
    data = json.loads(res.read_text())
    _gradescope_format(data)
    relu, kl = data["tests"][0], data["tests"][1]
    assert (relu["name"], relu["status"], kl["name"], kl["status"]) == \
        ("relu_backward", "passed", "kl_normal_std_grad", "failed")
    assert data["extra_data"]["student_id"] == "ann, bob"          # a group: both members
    assert data["execution_time"] >= 0.05 * 3      # at least three visible cases slept
    assert data["execution_time"] < data["extra_data"]["grading_time"]
    notes = [t for t in data["tests"] if t["max_score"] == 0]
    assert len(notes) == 1 and notes[0]["visibility"] == "hidden"   # staff only
    assert "importlib" in notes[0]["output"] and "[mentions]" in notes[0]["output"]
    # visibility from the manifest: one setting for all, or per exercise
    from numpyvae.teaching import grader
    report = grader.grade(sub, ["relu_backward"])
    assert report.to_gradescope("after_published")["tests"][0]["visibility"] == "after_published"
    assert report.to_gradescope({"relu_backward": "hidden"})["tests"][0]["visibility"] == "hidden"
