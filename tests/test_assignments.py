"""Exercise generation and grading (numpyvae.teaching.assignments).

An answer key (``solutions=True``) must grade n / n; untouched stubs 0 / n "not
attempted"; a key with one planted bug FAIL on exactly that exercise; a crash
inside student code is reported as "error" without stopping the grader.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from numpyvae.teaching import assignments as A

ALL = list(A.EXERCISES)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("assignment")
    stub = A.make_assignment(root / "stub")
    key = A.make_assignment(root / "key", solutions=True)
    return root, stub, key


def _load(path):
    spec = importlib.util.spec_from_file_location(f"_t_{path.parent.name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _variant(key, tmp_path, *replacements):
    text = key.read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} must occur once in the answer key"
        text = text.replace(old, new)
    path = tmp_path / "student_vae.py"
    path.write_text(text, encoding="utf-8")
    return path


def test_stubs_are_importable_and_raise(made):
    _, stub, _ = made
    text = stub.read_text(encoding="utf-8")
    assert "import numpy as np" in text
    assert "np.matmul(self.x.T, dy" not in text          # the Linear body was cut out
    assert "self.x = x" in text and "def _sigmoid" in text  # forward and helpers stay
    mod = _load(stub)
    assert mod.__exercises__ == ALL
    x = np.ones((2, 3))
    for cls in ("ReLU", "Tanh", "Sigmoid", "Softplus"):
        layer = getattr(mod, cls)()
        layer.forward(x)
        with pytest.raises(NotImplementedError, match="Exercise"):
            layer.backward(x)
    lin = mod.Linear(3, 2, np.random.default_rng(0))
    lin.forward(x)
    with pytest.raises(NotImplementedError, match="Exercise 1: linear_backward"):
        lin.backward(np.ones((2, 2)))
    with pytest.raises(NotImplementedError):
        mod.kl_normal_std_grad(x, x)
    with pytest.raises(NotImplementedError):
        mod.reparameterize_backward(np.ones((1, 2, 3)), x, np.ones((1, 2, 3)))
    with pytest.raises(NotImplementedError):
        mod.bernoulli_log_prob_grad(x * 0, x)
    with pytest.raises(NotImplementedError):
        mod.gaussian_log_prob_grad(x, x, 1.0)
    with pytest.raises(NotImplementedError):
        mod.gaussian_learned_log_prob_grad(x, x, x)
    vae = mod.VAE(x_dim=3, z_dim=2, hidden=(4,), seed=0)
    vae.forward(x * 0.5)
    with pytest.raises(NotImplementedError, match="vae_backward"):
        vae.backward()


def test_untouched_stubs_grade_zero_not_attempted(made):
    _, stub, _ = made
    report = A.grade(stub)
    assert [r.exercise for r in report.results] == ALL
    assert {r.status for r in report.results} == {"not attempted"}
    assert report.score == f"0 / {len(ALL)}" and not report.passed
    assert "not attempted" in str(report) and report.score in str(report)


def test_answer_key_grades_full_marks(made):
    _, _, key = made
    report = A.grade(key, seed=3)
    assert report.passed, str(report)
    assert report.score == f"{len(ALL)} / {len(ALL)}"
    assert all(r.max_error < A.gradcheck.PASS for r in report.results)


BUGS = {
    "relu_backward": [("return dy * (self.y > 0)", "return 2 * dy * (self.y > 0)")],
    "linear_backward": [("np.matmul(self.x.T, dy, out=self.dW)", "self.dW = dy.T @ self.x")],
    "reparameterize_backward": [("dlogvar = 0.5 * sigma * (dz * eps).sum(axis=0)",
                                 "dlogvar = sigma * (dz * eps).sum(axis=0)")],
    "kl_normal_std_grad": [("return mu.copy(), 0.5 * np.expm1(logvar)",
                            "return mu.copy(), 0.5 * np.exp(logvar)")],
    "gaussian_learned_log_prob_grad": [("return r, 0.5 * (d * r - 1)", "return r, 0.5 * d * r")],
    "vae_backward": [("            dlogvar += (beta / B) * dlogvar_kl\n", "")],
    # forward and backward wrong in the same way: the grader uses the reference forward
    "tanh_backward": [("self.y = np.tanh(x)", "self.y = np.tanh(2 * x)"),
                      ("return dy * (1 - self.y * self.y)",
                       "return 2 * dy * (1 - self.y * self.y)")],
}


@pytest.mark.parametrize("exercise", sorted(BUGS))
def test_a_planted_bug_fails_exactly_its_exercise(made, tmp_path, exercise):
    _, _, key = made
    report = A.grade(_variant(key, tmp_path, *BUGS[exercise]))
    for r in report.results:
        assert r.status == ("FAIL" if r.exercise == exercise else "pass"), str(report)
    assert report.score == f"{len(ALL) - 1} / {len(ALL)}"


def test_k_samples_must_be_summed(made, tmp_path):
    _, _, key = made
    path = _variant(key, tmp_path, ("dmu = dz.sum(axis=0)", "dmu = dz.mean(axis=0)"))
    assert A.grade(path, ["reparameterize_backward"]).status("reparameterize_backward") == "FAIL"


def test_replacing_the_gradient_array_fails(made, tmp_path):
    _, _, key = made
    path = _variant(key, tmp_path, ("np.matmul(self.x.T, dy, out=self.dW)",
                                    "self.dW = self.x.T @ dy"))
    row = A.grade(path, ["linear_backward"]).results[0]
    assert row.status == "FAIL" and "instead of writing into it" in row.message


def test_other_exceptions_are_errors_not_crashes(made, tmp_path):
    _, _, key = made
    path = _variant(key, tmp_path,
                    ("return dy * (1 - self.y * self.y)", "return dy * (1 - self.z ** 2)"),
                    ("return mu.copy(), 0.5 * np.expm1(logvar)", 'raise ValueError("boom")'))
    report = A.grade(path)
    rows = {r.exercise: r for r in report.results}
    assert rows["tanh_backward"].status == "error"
    assert rows["tanh_backward"].message.startswith("AttributeError")
    assert rows["kl_normal_std_grad"].status == "error"
    assert rows["kl_normal_std_grad"].message == "ValueError: boom"
    assert "Traceback" not in str(report)
    assert report.n_passed == len(ALL) - 2


def test_calling_numpyvae_itself_is_flagged(made, tmp_path):
    _, _, key = made
    path = _variant(key, tmp_path, ("return mu.copy(), 0.5 * np.expm1(logvar)",
                                    "import numpyvae.kl\n    "
                                    "return numpyvae.kl.kl_normal_std_grad(mu, logvar)"))
    row = A.grade(path, ["kl_normal_std_grad"]).results[0]
    assert row.status == "pass" and "by hand" in row.message


def test_a_file_that_does_not_import_is_all_errors(tmp_path):
    path = tmp_path / "student_vae.py"
    path.write_text("def broken(:\n", encoding="utf-8")
    report = A.grade(path, ["relu_backward", "kl_normal_std_grad"])
    assert [r.status for r in report.results] == ["error", "error"]
    assert "SyntaxError" in report.results[0].message


def test_a_subset_assignment_and_its_readme(tmp_path):
    path = A.make_assignment(tmp_path, ["kl_normal_std_grad", "relu_backward"])
    text = path.read_text(encoding="utf-8")
    assert "class ReLU" in text and "def kl_normal_std(" in text and "class Tanh" not in text
    assert "Exercise 1: kl_normal_std_grad" in text and "Exercise 2: relu_backward" in text
    report = A.grade(path)      # defaults to the file's own exercise list
    assert [r.exercise for r in report.results] == ["kl_normal_std_grad", "relu_backward"]
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "derivations/02_kl.md, eq. (2.4)" in readme
    assert "derivations/06_backprop_mlp.md, eq. (6.2)" in readme
    assert "python -m numpyvae.teaching.assignments grade student_vae.py" in readme
    manifest = json.loads((tmp_path / "assignment.json").read_text(encoding="utf-8"))
    assert manifest["exercises"] == ["kl_normal_std_grad", "relu_backward"]


def test_hide_answers_removes_the_formulas(tmp_path):
    path = A.make_assignment(tmp_path, hide_answers=True)
    text = path.read_text(encoding="utf-8")
    for formula in ("dx = dy", "x - sigmoid(l)", "(exp(logvar) - 1) / 2", "dW = x^T dy",
                    "dlogvar = sum_k", "(x - mean) / c"):
        assert formula not in text
    assert "Derivation: derivations/02_kl.md, eq. (2.4)" in text
    assert A.grade(path).score == f"0 / {len(ALL)}"


def test_unknown_exercise_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="exercises"):
        A.make_assignment(tmp_path, ["softmax_backward"])


def test_main_exit_codes(made, tmp_path, capsys):
    root, stub, key = made
    assert A.main(["grade", str(key)]) == 0
    assert A.main(["grade", str(stub)]) == 1
    assert A.main(["grade", str(key), "--exercises", "relu_backward,tanh_backward"]) == 0
    assert A.main(["grade", str(stub), "--manifest", str(root / "stub" / "assignment.json")]) == 1
    assert A.main(["grade", str(key), "--exercises", "nope"]) == 2
    assert A.main(["grade", str(tmp_path / "missing.py")]) == 2
    assert A.main(["make", str(tmp_path / "out"), "--exercises", "relu_backward"]) == 0
    assert (tmp_path / "out" / "student_vae.py").is_file()
    assert A.main(["frobnicate"]) == 2
    capsys.readouterr()
    assert A.main(["grade", str(key), "--json", "--exercises", "relu_backward"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == "1 / 1"
