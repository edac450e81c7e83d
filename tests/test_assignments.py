"""The teaching kit: make, grade, notes with answers hidden, Gradescope, the CLI.

An answer key (``solutions=True``) must grade full marks; untouched stubs 0 "not
attempted"; a key with one planted bug FAIL on exactly that exercise; the kit is
self-contained (no numpyvae import in the student file, a self-check that runs
without numpyvae); the notes' graded results are hidden with or without markers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from numpyvae.teaching import cli, grader, stubs
from numpyvae.teaching.exercises import EXERCISES, build_cases, select

ALL = list(EXERCISES)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("assignment")
    stub = stubs.make_assignment(root / "stub", notebook=True)
    key = stubs.make_assignment(root / "key", solutions=True)
    return root, stub, key


def _variant(key, tmp_path, *replacements):
    text = key.read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} must occur once in the answer key"
        text = text.replace(old, new)
    path = tmp_path / "student_vae.py"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the kit
def test_the_kit_is_self_contained(made):
    root, stub, _ = made
    kit = stub.parent
    names = {p.name for p in kit.iterdir()}
    assert {"student_vae.py", "README.md", "assignment.json", "cases.json", "check_my_work.py",
            "notes", "student_vae.ipynb"} <= names
    text = stub.read_text(encoding="utf-8")
    assert "numpyvae" not in text.replace("numpyvae's", "")      # never imports the reference
    assert "class VAE:" in text and "_Reference" not in text     # no subclass of the reference
    for needed in ("self._cache", "Attribute map", "returns None", "enc_slice"):
        assert needed in text
    import re
    named = set(re.findall(r"Derivation: notes/(\S+\.md)", text))
    assert named and {p.name for p in (kit / "notes").iterdir()} == named   # every note named
    assert "Derivation: derivations/" not in text


def _note_of(kit, exercise):
    """The kit's note (and the full one) holding ``exercise``'s result, by the manifest."""
    m = json.loads((kit / "assignment.json").read_text(encoding="utf-8"))
    name = next(n for n, how in m["notes"].items() if exercise in how)
    return ((kit / "notes" / name).read_text(encoding="utf-8"),
            (ROOT / "derivations" / name).read_text(encoding="utf-8"))


def test_answers_are_hidden_by_default(made):
    _, stub, _ = made
    text = stub.read_text(encoding="utf-8")
    for formula in ("dx = dy * [x > 0]", "dx = dy * (1 - y^2)", "x - sigmoid(l)",
                    "(exp(logvar) - 1) / 2", "dW = x^T dy", "dlogvar = sum_k", "(x - mean) / c",
                    "np.matmul(self.x.T, dy", "dy * self.y * (1 - self.y)"):
        assert formula not in text
    kl, full = _note_of(stub.parent, "kl_normal_std_grad")
    assert "Hidden" in kl or "hidden" in kl
    result = r"\frac12\big(e^{v_j} - 1\big)"       # the graded result, dKL/dlogvar
    if result in full:          # (the notes may be rewritten; the text checked stays theirs)
        assert result not in kl
    assert len(kl) < len(full)


def test_show_answers_keeps_them(tmp_path):
    path = stubs.make_assignment(tmp_path, ["relu_backward", "kl_normal_std_grad"],
                                 hide_answers=False)
    text = path.read_text(encoding="utf-8")
    assert "dx = dy * [x > 0]" in text and "(exp(logvar) - 1) / 2" in text
    kl, full = _note_of(tmp_path, "kl_normal_std_grad")
    assert r"\frac12\big(e^{v_j} - 1\big)" in kl and "<!--" not in kl


def test_stubs_import_and_raise(made):
    _, stub, _ = made
    import importlib.util
    spec = importlib.util.spec_from_file_location("_t_stub", stub)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.__exercises__ == ALL
    x = np.ones((2, 3))
    for cls in ("ReLU", "Tanh", "Sigmoid", "Softplus"):
        layer = getattr(mod, cls)()
        layer.forward(x)
        with pytest.raises(NotImplementedError, match="Exercise"):
            layer.backward(x)
    with pytest.raises(NotImplementedError):
        mod.kl_normal_std_grad(x, x)
    vae = mod.VAE(x_dim=3, z_dim=2, hidden=(4,), seed=0)
    assert vae.forward(x * 0.5, k=2).loss > 0
    with pytest.raises(NotImplementedError, match="vae_backward"):
        vae.backward()


def test_student_vae_forward_equals_the_reference(made):
    """The template's forward and the reference forward give the same loss."""
    _, _, key = made
    import importlib.util
    from numpyvae.model import VAE
    spec = importlib.util.spec_from_file_location("_t_key", key)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    for cfg in [dict(hidden=(5,), likelihood="bernoulli"), dict(hidden=(), likelihood="gaussian"),
                dict(hidden=(4, 3), likelihood="gaussian_learned", activation="tanh")]:
        ref, st = VAE(6, 3, seed=1, **cfg), mod.VAE(6, 3, seed=1, **cfg)
        assert list(ref.params) == list(st.params)
        st.flat_params[...] = ref.flat_params
        x = (rng.random((4, 6)) < 0.5).astype(float)
        eps = rng.standard_normal((2, 4, 3))
        for kl in ("closed", "mc"):
            assert np.isclose(ref.forward(x, eps=eps, kl=kl, beta=0.7).loss,
                              st.forward(x, eps=eps, kl=kl, beta=0.7).loss, rtol=1e-12)


def test_check_model_checks_the_students_class(made):
    """cs231n habit: nv.gradcheck.check_model(student_vae, x) checks the student's code."""
    root, stub, key = made
    import importlib.util
    from numpyvae import gradcheck
    for path, ok in ((stub, False), (key, True)):
        spec = importlib.util.spec_from_file_location(f"_t_{path.parent.name}_cm", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        vae = mod.VAE(4, 2, hidden=(3,), seed=0)
        x = np.random.default_rng(0).random((2, 4))   # grey levels: no all-zero row at a kink
        if ok:
            assert gradcheck.check_model(vae, x).passed
        else:
            with pytest.raises(NotImplementedError):
                gradcheck.check_model(vae, x)


def test_the_self_check_runs_without_numpyvae(made):
    root, stub, key = made
    kit = key.parent
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    env["OPENBLAS_NUM_THREADS"] = "1"
    blocker = kit / "numpyvae.py"     # shadows the package: any import of it fails loudly
    blocker.write_text("raise ImportError('the kit must not need numpyvae')\n", encoding="utf-8")
    try:
        out = subprocess.run([sys.executable, "check_my_work.py", "student_vae.py",
                              "relu_backward,kl_normal_std_grad,vae_backward"], cwd=kit, env=env,
                             capture_output=True, text=True, timeout=120)
    finally:
        blocker.unlink()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "relative error" in out.stdout and "wrong" not in out.stdout
    out = subprocess.run([sys.executable, "check_my_work.py", "student_vae.py", "relu_backward"],
                         cwd=stub.parent, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "not implemented yet" in out.stdout


def test_make_refuses_to_overwrite(tmp_path):
    stubs.make_assignment(tmp_path / "hw", ["relu_backward"])
    with pytest.raises(ValueError, match="--force"):
        stubs.make_assignment(tmp_path / "hw", ["relu_backward"])
    stubs.make_assignment(tmp_path / "hw", ["tanh_backward"], force=True)
    assert json.loads((tmp_path / "hw" / "assignment.json").read_text())["exercises"] == \
        ["tanh_backward"]


def test_manifest_records_options_seeds_and_version(tmp_path):
    import numpyvae
    stubs.make_assignment(tmp_path, ["linear_backward", "kl_backward"], points={"kl_backward": 3},
                          partial_credit=True, seed=7)
    m = json.loads((tmp_path / "assignment.json").read_text(encoding="utf-8"))
    assert m["exercises"] == ["linear_backward", "kl_normal_std_grad"]
    assert m["points"] == {"linear_backward": 2.0, "kl_normal_std_grad": 3.0}
    assert m["seed"] == 7 and m["partial_credit"] and m["hidden_cases"]
    assert m["numpyvae_version"] == numpyvae.__version__ and not m["show_answers"]


def test_unknown_exercise_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="exercises"):
        stubs.make_assignment(tmp_path, ["softmax_backward"])
    with pytest.raises(ValueError, match="notes_dir"):
        stubs.make_assignment(tmp_path, ["relu_backward"], notes_dir=tmp_path / "nope")
    assert not (tmp_path / "student_vae.py").exists()     # nothing written on bad input


# --------------------------------------------------------------------------- notes
FIXTURE_NOTE = """# A note

Differentiate:

$$ f = x^2 \\tag{9.1} $$

<!-- answer: relu_backward -->
$$ \\frac{df}{dx} = 2x \\tag{9.2} $$
<!-- /answer -->

<!-- answer: kl_normal_std_grad -->
The KL result stays when KL is not assigned.
<!-- /answer -->

## Check it yourself

```python
import numpy as np
# <!-- answer: relu_backward, tanh_backward -->
dx = dy * (y > 0)
# <!-- /answer -->
print(dx)
```
"""


def test_marked_answers_are_hidden():
    text, how = stubs.hide_note_answers(FIXTURE_NOTE, ["relu_backward"])
    assert how == {"relu_backward": "markers"}
    assert "2x" not in text and "dx = dy" not in text
    assert "*[Hidden: the result of exercise relu_backward. Derive it yourself.]*" in text
    assert "# (hidden: the result of exercise relu_backward; derive it yourself)" in text
    assert "The KL result stays" in text and "<!--" not in text
    assert r"\tag{9.1}" in text and "print(dx)" in text


def test_broken_markers_are_reported():
    with pytest.raises(ValueError, match="never closed"):
        stubs.hide_note_answers("<!-- answer: relu_backward -->\nx\n", ["relu_backward"], "n.md")
    with pytest.raises(ValueError, match="never opened"):
        stubs.hide_note_answers("x\n<!-- /answer -->\n", ["relu_backward"], "n.md")


def test_unmarked_notes_fall_back_to_the_tagged_equation():
    note = ("Text.\n\n$$ a = b \\tag{4.1} $$\n\n$$\n\\frac{dL}{dv} = s\n\\tag{4.2}\n$$\n\n"
            "In NumPy: `dlogvar = 0.5 * s`.\n\n```python\ndmu = dz.sum(0)\nprint(dmu)\n```\n")
    text, how = stubs.hide_note_answers(note, ["reparameterize_backward"], tags={
        "reparameterize_backward": ["4.2"]}, answer_names={
        "reparameterize_backward": ("dmu", "dlogvar")})
    assert how == {"reparameterize_backward": "heuristic"}
    assert r"\tag{4.1}" in text and r"\tag{4.2}" not in text and "dL}{dv}" not in text
    assert "dlogvar = 0.5" not in text and "dmu = dz" not in text and "print(dmu)" in text


@pytest.mark.parametrize("ex", ["linear_backward", "reparameterize_backward",
                                "kl_normal_std_grad", "gaussian_learned_log_prob_grad",
                                "vae_backward", "iwae_backward",
                                "cholesky_reparameterize_backward", "straight_through_backward"])
def test_the_real_notes_lose_the_graded_result(tmp_path, ex):
    stubs.make_assignment(tmp_path, [ex])
    m = json.loads((tmp_path / "assignment.json").read_text(encoding="utf-8"))
    holding = {note: how for note, how in m["notes"].items() if ex in how}
    assert holding
    for note, how in holding.items():
        assert how[ex] in ("markers", "heuristic"), (note, how)
        full = (ROOT / "derivations" / note).read_text(encoding="utf-8")
        kit = (tmp_path / "notes" / note).read_text(encoding="utf-8")
        assert len(kit) < len(full)
        assert "Hidden" in kit or "hidden" in kit


# --------------------------------------------------------------------------- grading
def test_untouched_stubs_grade_zero_not_attempted(made):
    _, stub, _ = made
    report = grader.grade(stub)
    assert [r.exercise for r in report.results] == ALL
    assert {r.status for r in report.results} == {"not attempted"}
    assert report.score == f"0 / {len(ALL)}" and not report.passed and report.points == 0


def test_answer_key_grades_full_marks_on_hidden_cases_too(made):
    _, _, key = made
    report = grader.grade(key, seed=3, hidden=True, student_id="carol")
    assert report.passed, str(report)
    assert report.points == report.max_points == sum(e.points for e in EXERCISES.values())


BUGS = {
    "relu_backward": [("return dy * (self.y > 0)", "return 2 * dy * (self.y > 0)")],
    "linear_backward": [("np.matmul(self.x.T, dy, out=self.dW)", "self.dW[...] = dy.T @ self.x")],
    "reparameterize_backward": [("dlogvar = 0.5 * sigma * (dz * eps).sum(axis=0)",
                                 "dlogvar = sigma * (dz * eps).sum(axis=0)")],
    "kl_normal_std_grad": [("return mu.copy(), 0.5 * np.expm1(logvar)",
                            "return mu.copy(), 0.5 * np.exp(logvar)")],
    "gaussian_learned_log_prob_grad": [("return r, 0.5 * (d * r - 1)", "return r, 0.5 * d * r")],
    "iwae_backward": [("return dbound * w_tilde", "return dbound * np.ones_like(w_tilde) / len(w)")],
    "cholesky_reparameterize_backward": [
        ("dlogvar = 0.5 * np.exp(0.5 * logvar) * G[:, idx, idx]", "dlogvar = 0.5 * G[:, idx, idx]")],
    "straight_through_backward": [("dz_e = dz_q + (2 * beta / B) * (z_e - z_q)",
                                   "dz_e = (2 * beta / B) * (z_e - z_q)")],
    # forward and backward wrong in the same way: the grader uses the reference forward
    "tanh_backward": [("self.y = np.tanh(x)", "self.y = np.tanh(2 * x)"),
                      ("return dy * (1 - self.y * self.y)",
                       "return 2 * dy * (1 - self.y * self.y)")],
}


@pytest.mark.parametrize("exercise", sorted(BUGS))
def test_a_planted_bug_fails_exactly_its_exercise(made, tmp_path, exercise):
    _, _, key = made
    chosen = [exercise, "sigmoid_backward"]
    report = grader.grade(_variant(key, tmp_path, *BUGS[exercise]), chosen)
    assert report.status(exercise) == "FAIL", str(report)
    assert report.status("sigmoid_backward") == "pass"


def test_partial_credit_per_gradient(made, tmp_path):
    _, _, key = made
    path = _variant(key, tmp_path, ("return mu.copy(), 0.5 * np.expm1(logvar)",
                                    "return mu.copy(), np.expm1(logvar)"))
    report = grader.grade(path, ["kl_normal_std_grad"], points={"kl_normal_std_grad": 4},
                          partial_credit=True)
    row = report.row("kl_normal_std_grad")
    assert row.status == "FAIL" and row.gradients == {"dmu": True, "dlogvar": False}
    assert row.score == 2.0 and row.max_score == 4.0
    assert grader.grade(path, ["kl_normal_std_grad"]).row("kl_normal_std_grad").score == 0


def test_hidden_cases_differ_per_student():
    ex = EXERCISES["linear_backward"]
    a = build_cases(ex, 0, "alice", hidden=True)
    b = build_cases(ex, 0, "bob", hidden=True)
    assert not all(np.array_equal(x[1]["x"], y[1]["x"]) for x, y in zip(a, b)
                   if x[1]["x"].shape == y[1]["x"].shape) or \
        [m["label"] for m, _ in a] != [m["label"] for m, _ in b]
    assert all(m["secret"] for m, _ in a)
    v1, v2 = build_cases(ex, 0), build_cases(ex, 0)
    assert all(np.array_equal(x[1]["x"], y[1]["x"]) for x, y in zip(v1, v2))


def test_the_file_list_is_read_without_running_it(tmp_path):
    path = tmp_path / "s.py"
    path.write_text('__exercises__ = ["relu_backward"]\nraise SystemExit(3)\n', encoding="utf-8")
    report = grader.grade(path)
    assert [r.exercise for r in report.results] == ["relu_backward"]
    assert report.results[0].status == "error" and "SystemExit" in report.results[0].message


def test_aliases_name_the_same_exercise():
    assert select("kl_backward")[0].id == "kl_normal_std_grad"


# --------------------------------------------------------------------------- CLI and Gradescope
@pytest.mark.slow
def test_the_instructor_commands(tmp_path, capsys, made):
    _, _, key = made
    from numpyvae.cli.main import main as top
    hw3 = tmp_path / "hw3"
    assert top(["assignment", "make", str(hw3), "--exercises",
                "linear_backward,reparameterize_backward,kl_backward,vae_backward",
                "--points", "vae_backward=4", "--notebook"]) == 0
    assert (hw3 / "student_vae.ipynb").is_file()
    assert top(["assignment", "make", str(hw3)]) == 2          # refuses to overwrite
    assert "--force" in capsys.readouterr().err
    man = hw3 / "assignment.json"
    assert top(["assignment", "grade", str(key), "--manifest", str(man)]) == 0
    table = capsys.readouterr().out
    assert "vae_backward" in table and "4/4" in table and "score 4 / 4" in table
    res = tmp_path / "results" / "results.json"
    assert top(["assignment", "grade", str(hw3 / "student_vae.py"), "--manifest", str(man),
                "--gradescope", str(res), "--student-id", "alice"]) == 1
    data = json.loads(res.read_text(encoding="utf-8"))
    assert data["score"] == 0 and len(data["tests"]) == 4
    for t in data["tests"]:
        assert set(t) >= {"name", "score", "max_score", "output", "visibility", "status"}
        assert t["status"] == "failed" and "(" not in t["name"]      # stable names
    assert [t["max_score"] for t in data["tests"]] == [2.0, 1.0, 1.0, 4.0]
    zpath = tmp_path / "hw3-autograder.zip"
    assert top(["assignment", "gradescope", str(hw3), "--out", str(zpath)]) == 0
    with zipfile.ZipFile(zpath) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "assignment.json",
                "numpyvae_src/pyproject.toml", "numpyvae_src/numpyvae/teaching/grader.py"} <= names
        run = z.read("run_autograder").decode()
        assert 'autograde --root "$ROOT"' in run and 'RESULTS="$ROOT/results/results.json"' in run
        assert z.getinfo("run_autograder").external_attr >> 16 & 0o111
        z.extractall(tmp_path / "unzipped")
    assert top(["assignment", "gradescope", str(hw3), "--out", str(zpath)]) == 2   # exists
    # the bundled source grades on its own (what run_autograder does, without /autograder)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "unzipped" / "numpyvae_src"),
               OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "numpyvae", "assignment", "grade", str(key),
                          "--manifest", str(tmp_path / "unzipped" / "assignment.json"),
                          "--gradescope", str(tmp_path / "gs.json"), "--student-id", "x"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((tmp_path / "gs.json").read_text())["score"] == 8.0
    # run_autograder itself, on a stand-in /autograder (the bundled source on PYTHONPATH
    # instead of setup.sh's pip install)
    ag = tmp_path / "autograder"
    (ag / "submission").mkdir(parents=True)
    (tmp_path / "unzipped").rename(ag / "source")
    (ag / "submission" / "student_vae.py").write_text(key.read_text(encoding="utf-8"))
    (ag / "submission_metadata.json").write_text(json.dumps({"users": [{"sid": "s123"}]}))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # a script, not a symlink: a link to a virtual environment's python, put in another folder,
    # finds no pyvenv.cfg beside it and runs the base interpreter without the environment
    (bindir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bindir / "python3").chmod(0o755)
    env = dict(env, AUTOGRADER_ROOT=str(ag), PATH=f"{bindir}:{os.environ['PATH']}",
               PYTHONPATH=str(ag / "source" / "numpyvae_src"))
    out = subprocess.run(["bash", str(ag / "source" / "run_autograder")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(student s123)" in out.stdout
    data = json.loads((ag / "results" / "results.json").read_text(encoding="utf-8"))
    scored = [t for t in data["tests"] if t["max_score"]]
    assert data["score"] == 8.0 and len(scored) == 4
    # the answer key is numpyvae's own code: the staff see its similarity, the score is kept
    notes = [t for t in data["tests"] if not t["max_score"]]
    assert len(notes) == 1 and "similar to numpyvae's own" in notes[0]["output"]


def test_a_missing_submission_still_writes_results(tmp_path):
    res = tmp_path / "r.json"
    assert cli.main(["grade", str(tmp_path / "nope.py"), "--exercises", "relu_backward",
                     "--gradescope", str(res)]) == 1
    data = json.loads(res.read_text(encoding="utf-8"))
    assert data["score"] == 0 and "no submission" in data["tests"][0]["output"]


@pytest.mark.slow
def test_cli_exit_codes(made, tmp_path, capsys):
    root, stub, key = made
    assert cli.main(["grade", str(key), "--exercises", "relu_backward,tanh_backward"]) == 0
    assert cli.main(["grade", str(stub), "--manifest", str(stub.parent / "assignment.json")]) == 1
    assert cli.main(["grade", str(key), "--exercises", "nope"]) == 2
    assert cli.main(["grade", str(tmp_path / "missing.py")]) == 2
    assert cli.main(["grade", str(key), "--manifest", str(key.parent / "assignment.json"),
                   "--exercises", "relu_backward"]) == 2
    assert cli.main(["make", str(tmp_path / "o"), "--exercises", "relu_backward",
                     "--hide-answers"]) == 2          # answers are hidden unless --show-answers
    assert cli.main(["make", str(tmp_path / "o2"), "--points", "relu_backward"]) == 2
    assert cli.main(["frobnicate"]) == 2
    capsys.readouterr()
    assert cli.main(["grade", str(key), "--json", "--exercises", "relu_backward"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == "1 / 1"


def test_adding_an_exercise_is_a_few_lines(tmp_path):
    """A new function exercise: one register() call; make and grade need nothing else."""
    from numpyvae.teaching.exercises import Exercise, FunctionSpec, register
    ex = register(Exercise(
        "gaussian_mean_grad_demo", "function", "likelihoods", "gaussian_log_prob_grad",
        "Return d/dmean of gaussian_log_prob(x, mean, c).", gradients=("dmean",),
        context=("gaussian_log_prob",),
        function=FunctionSpec("gaussian_log_prob", ("x", "mean", "c"), ("x", "mean", "c"),
                              ("mean",), ("dmean",), consts=("c",))))
    try:
        key = stubs.make_assignment(tmp_path / "k", [ex.id], solutions=True)
        stub = stubs.make_assignment(tmp_path / "s", [ex.id])
        assert grader.grade(key, hidden=True).passed
        assert grader.grade(stub).status(ex.id) == "not attempted"
    finally:
        del EXERCISES[ex.id]


def test_the_readme_says_what_may_be_imported(made):
    root, stub, key = made
    readme = (stub.parent / "README.md").read_text(encoding="utf-8")
    assert "NumPy and Python's standard library, nothing else" in readme
    assert "student_vae (1).py" in readme and "magics" in readme


def test_the_instructor_fixes_the_vae_cases_settings(tmp_path, capsys):
    """--vae-settings is recorded; every student's hidden VAE cases keep those likelihoods and
    activations (and the visible cases' KL mode, K, beta), varying only sizes and values."""
    from numpyvae.teaching.exercises import vae_configs
    out = tmp_path / "hw"
    assert cli.main(["make", str(out), "--exercises", "vae_backward",
                     "--vae-settings", "bernoulli:sigmoid,gaussian:tanh"]) == 0
    man = json.loads((out / "assignment.json").read_text(encoding="utf-8"))
    assert man["vae_settings"] == [{"likelihood": "bernoulli", "activation": "sigmoid"},
                                   {"likelihood": "gaussian", "activation": "tanh"}]
    ex = EXERCISES["vae_backward"]
    want = [(c["likelihood"], c["activation"], c["kl"], c["k"] > 1, c["beta"])
            for c in vae_configs(man["vae_settings"])]
    shapes = set()
    for sid in range(40):
        cases = [m for m, _ in build_cases(ex, 0, f"s{sid}", hidden=True,
                                           vae_settings=man["vae_settings"]) if not m["q"]]
        assert [(m["likelihood"], m["activation"], m["kl"], m["k"] > 1, m["beta"])
                for m in cases[:-1]] == want
        assert cases[-1]["large"] and cases[-1]["x_dim"] == 784
        shapes.add(tuple((m["x_dim"], m["z_dim"], tuple(m["hidden"])) for m in cases[:-1]))
    assert len(shapes) > 30                   # the sizes do vary between students
    assert cli.main(["make", str(tmp_path / "bad"), "--vae-settings", "bernoulli:swish"]) == 2
    assert "vae_settings" in capsys.readouterr().err
