"""The course kit's convolution exercises: their cases, a key that passes them, a planted
mistake that fails exactly its exercise, and a per-coordinate numerical backward that runs out
of time on the large hidden case."""
from __future__ import annotations

import numpy as np
import pytest

from numpyvae import conv_layers as C
from numpyvae.teaching import grader, stubs
from numpyvae.teaching.exercises import EXERCISES, build_cases

CONV = ("conv2d_backward", "conv_transpose2d_backward")


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv_kit")
    stubs.make_assignment(root / "key", exercises=list(CONV), solutions=True)
    return root / "key" / stubs.STUDENT_FILE


@pytest.mark.parametrize("ex_id", CONV)
def test_hidden_cases_overlap_stride_pad_and_include_a_large_one(ex_id):
    ex = EXERCISES[ex_id]
    cases = build_cases(ex, seed=5, student_id="dana", hidden=True)
    settings = [(a["W"].shape[-1], float(a["stride"]), float(a["padding"])) for _, a in cases]
    assert any(s > 1 and s < k and p > 0 for k, s, p in settings), settings   # overlapping
    assert any(s >= k for k, s, _ in settings), settings                      # disjoint
    large = [(m, a) for m, a in cases if m.get("large")]
    assert len(large) == 1 and large[0][1]["x"].size > 50_000
    # every case is valid for the reference forward, and the gradient shapes match the inputs
    for meta, a in cases:
        fwd = C.conv2d if ex_id == "conv2d_backward" else C.conv_transpose2d
        consts = [float(a[n]) for n in ex.function.consts]
        assert fwd(a["x"], a["W"], a["b"], *consts).shape == a["g"].shape, meta["label"]
    visible = build_cases(ex, seed=5, hidden=False)
    assert not any(m.get("large") for m, _ in visible)


def test_the_large_case_is_graded_against_the_reference_backward():
    ex = EXERCISES["conv2d_backward"]
    meta, a = next((m, a) for m, a in build_cases(ex, 0, "x", hidden=True) if m.get("large"))
    ref = grader._reference_numeric(ex, meta, a)
    want = C.conv2d_backward_loop(a["g"], a["x"], a["W"], int(a["stride"]), int(a["padding"]))
    for name, w in zip(("dx", "dW", "db"), want):
        np.testing.assert_allclose(ref[name], w, rtol=1e-10, atol=1e-10)


def test_the_key_passes_and_a_mistake_fails_exactly_its_exercise(key, tmp_path):
    report = grader.grade(key, list(CONV), seed=2, hidden=True, student_id="erin")
    assert report.passed, str(report)
    # a col2im that assigns where windows overlap: right with disjoint windows only
    text = key.read_text(encoding="utf-8")
    old = "            out[:, :, i:i + hi:stride, j:j + wi:stride] += c6[:, :, i, j]\n"
    assert text.count(old) == 1
    wrong = tmp_path / "student_vae.py"
    wrong.write_text(text.replace(old, old.replace("+=", "=")), encoding="utf-8")
    report = grader.grade(wrong, ["conv2d_backward"], seed=2, hidden=True, student_id="erin")
    row = report.row("conv2d_backward")
    assert row.status == "FAIL" and row.gradients["dx"] is False and row.gradients["dW"] is True


def test_a_numerical_backward_runs_out_of_time_on_the_large_case(key, tmp_path):
    text = key.read_text(encoding="utf-8")
    text += '''

def conv2d_backward(dy, x, W, stride=1, padding=0):
    """Central differences, one coordinate at a time."""
    b = np.zeros(W.shape[0])
    out = []
    for a in (x, W, b):
        g = np.zeros_like(a)
        for i in range(a.size):
            old = a.flat[i]
            a.flat[i] = old + 1e-5
            fp = np.sum(conv2d(x, W, b, stride, padding) * dy)
            a.flat[i] = old - 1e-5
            fm = np.sum(conv2d(x, W, b, stride, padding) * dy)
            a.flat[i] = old
            g.flat[i] = (fp - fm) / 2e-5
        out.append(g)
    return tuple(out)
'''
    path = tmp_path / "student_vae.py"
    path.write_text(text, encoding="utf-8")
    small = grader.grade(path, ["conv2d_backward"], limits=grader.Limits(timeout=3.0))
    assert small.row("conv2d_backward").status == "pass", str(small)
    hidden = grader.grade(path, ["conv2d_backward"], hidden=True, student_id="f",
                          limits=grader.Limits(timeout=3.0))
    assert hidden.row("conv2d_backward").status == "timeout", str(hidden)
