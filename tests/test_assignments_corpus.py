"""A corpus of student submissions, graded end to end in the isolated grader.

Each file in tests/submissions/ (plus the VAE variants below, made from the
generated answer key so they follow its template) has its expected status per
exercise and a piece of the message a student must see. Correct work in several
styles, the classic mistakes, and hostile files (the answer key by every import
route, patching the grader, exits, crashes, loops, huge prints, memory blow-ups,
NaN). The corpus is graded two at a time in one fixture, so the suite stays fast.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from numpyvae.teaching import grader, stubs

HERE = Path(__file__).parent / "submissions"
R, L, K, P = "relu_backward", "linear_backward", "kl_normal_std_grad", "reparameterize_backward"
LIK = ("bernoulli_log_prob_grad", "gaussian_log_prob_grad", "gaussian_learned_log_prob_grad")
ACT = ("tanh_backward", "sigmoid_backward", "softplus_backward")
V = "vae_backward"
IW, CH, ST = "iwae_backward", "cholesky_reparameterize_backward", "straight_through_backward"
LIMITS = grader.Limits(timeout=4.0, memory_mb=700)   # 4 s: importing numpyvae under load

UNREACHABLE = ("reference", "it imports numpyvae, which a submission cannot reach")

# name: ({exercise: (status, piece of the message), or a list of such pairs, one of which holds})
CORPUS = {
    # correct work, several styles
    "relu_correct": {R: ("pass", "")},
    "relu_where": {R: ("pass", "")},
    "linear_correct": {L: ("pass", "")},
    "linear_slice_assign": {L: ("pass", "")},
    "linear_helper_methods": {L: ("pass", "")},
    "kl_correct": {K: ("pass", "")},
    "kl_exp_minus_one": {K: ("pass", "")},
    "reparam_correct": {P: ("pass", "")},
    "likelihoods_correct": {e: ("pass", "") for e in LIK},
    "activations_correct": {e: ("pass", "") for e in ACT},
    "all_small_correct": {R: ("pass", ""), K: ("pass", ""), P: ("pass", "")},
    "prints_at_import": {R: ("pass", "")},
    "iwae_correct": {IW: ("pass", "")},
    "cholesky_correct": {CH: ("pass", "")},
    "straight_through_correct": {ST: ("pass", "")},
    "autograd_import": {R: ("pass", "")},      # passes here; the TA is told of the imports
    "kl_errstate_decorator": {K: ("pass", "")},
    "linear_dataclass": {L: ("pass", "")},
    "relu_wraps_decorator": {R: ("pass", "")},
    "scipy_import": {K: ("error", "only NumPy and Python's standard library")},
    "cholesky_pasted_renamed": {CH: ("pass", "")},     # passes; the TA sees its similarity
    # handed in differently: a folder holding the file, renamed, in a subfolder; the stub
    # beside a finished notebook with magics, shell lines, plots and extra checks
    "folder_misnamed_in_subfolder": {R: ("pass", "")},
    "folder_stub_and_notebook": {R: ("pass", ""), K: ("pass", "")},
    # classic mistakes
    "relu_times_two": {R: ("FAIL", "a factor of 2 too large")},
    "relu_nan": {R: ("FAIL", "NaN")},
    "kl_missing_half": {K: ("FAIL", "dlogvar is wrong")},
    "kl_wrong_sign": {K: ("FAIL", "wrong sign")},
    "kl_exp_not_expm1": {K: ("FAIL", "dlogvar is wrong on case")},
    "kl_nan": {K: ("FAIL", "contains NaN")},
    "kl_returns_one_array": {K: ("FAIL", "must return a tuple of 2 arrays (dmu, dlogvar)")},
    "kl_raises_value_error": {K: ("error", 'ValueError: boom (your line 11: raise ValueError("boom"))')},
    "linear_transposed_dW": {L: ("FAIL", "dW is wrong on case [Linear(B=3, D_in=4, D_out=4)]")},
    "linear_db_mean": {L: ("FAIL", "a mean over B where a sum belongs")},
    "linear_accumulates": {L: ("FAIL", "(+=)")},
    "linear_rebinds": {L: ("FAIL", "self.dW[...] = ...")},
    "linear_zeros": {L: ("FAIL", "all zeros")},
    "linear_returns_none": {L: ("FAIL", "(dx) is None")},
    "linear_ignores_input_grad": {L: ("FAIL", "input_grad False")},
    "reparam_mean_over_k": {P: ("FAIL", "a mean over K where a sum belongs")},
    "reparam_sigma_for_logvar": {P: ("FAIL", "dlogvar is wrong")},
    "reparam_missing_half": {P: ("FAIL", "a factor of 2 too large")},
    "likelihoods_mistakes": {LIK[0]: ("FAIL", "wrong sign"), LIK[1]: ("FAIL", "dmean is wrong"),
                             LIK[2]: ("FAIL", "dlogvar is wrong")},
    "iwae_uniform_weights": {IW: ("FAIL", "uniform 1/K (the ELBO's average)")},
    "iwae_unstable_softmax": {IW: ("FAIL", "subtract the largest log w first")},
    "cholesky_missing_exp": {CH: ("FAIL", "lacks the factor L_ii = exp(logvar_i / 2)")},
    "straight_through_to_codebook": {ST: ("FAIL", "it lacks the straight-through copy")},
    "not_attempted": {R: ("not attempted", "NotImplementedError"),
                      K: ("not attempted", "NotImplementedError")},
    "syntax_error": {K: ("error", "SyntaxError")},
    # hostile
    "import_star_reference": {R: ("reference", "does not come from your file"),
                              K: ("reference", "does not come from your file")},
    "alias_reference": {K: ("reference", "does not come from your file")},
    "importlib_reference": {R: ("reference", "does not come from your file")},
    "bases_reference": {R: ("reference", "does not come from your file")},
    # run as root the submission cannot import numpyvae at all (its own user, the package
    # hidden): the import fails first; as an ordinary user the checks inside the child catch it
    "assigned_reference": {R: [("reference", "ReLU.backward comes from"), UNREACHABLE]},
    "profile_off": {R: [("reference", "tracing was switched off"), UNREACHABLE]},
    "reimport_after_stubs": {R: [("reference", "comes from"), UNREACHABLE]},
    "five_line_answer_key": {e: ("reference", "does not come from your file") for e in
                             (L, R, *ACT, P, K, *LIK, V)},
    "patch_grader": {R: [("FAIL", "all zeros"), UNREACHABLE]},
    "exit_in_backward": {R: ("error", "SystemExit"), K: ("pass", "")},
    "keyboard_interrupt": {R: ("error", "KeyboardInterrupt"), K: ("pass", "")},
    "os_exit_in_backward": {R: ("error", "exit code 0"), K: ("pass", "")},
    "segfault": {R: ("error", "SIGSEGV"), K: ("pass", "")},
    "loop_in_backward": {R: ("timeout", "did not finish within 4 s"), K: ("pass", "")},
    "loop_at_import": {R: ("timeout", "importing the file did not finish")},
    "exit_at_import": {R: ("error", "cannot import the file: SystemExit")},
    "huge_print": {R: ("pass", "")},
    "thread_hangs_at_exit": {R: ("pass", "")},
    "memory_blowup": {R: ("error", "MemoryError"), K: ("pass", "")},
    # deriving nothing
    "linear_numerical_diff": {L: ("timeout", "too slow: numerical differentiation?")},
    # the limit that remains: an elementwise derivative taken numerically in one call
    "tanh_vectorised_numerical": {"tanh_backward": ("pass", "")},
}

# VAE submissions: (old, new) replacements in the generated answer key's VAE.backward
VAE_VARIANTS = {
    "vae_correct": ([], ("pass", "")),
    "vae_helper_method": ([("        # 1. likelihood: d loss / d decoder outputs\n        douts = ",
                            "        douts = self._douts(x, cache, scale, K, B)\n        _unused = "),
                           ("    def backward(self):",
                            "    def _douts(self, x, cache, scale, K, B):\n"
                            "        return [(-scale * d).reshape(K * B, self.x_dim)\n"
                            "                for d in self.lik.grad(x, *cache['outs'])]\n\n"
                            "    def backward(self):")],
                          ("pass", "")),
    "vae_kl_without_beta": ([("            dmu += (beta / B) * dmu_kl\n", "            dmu += dmu_kl / B\n")],
                            ("FAIL", "grads['enc.")),
    "vae_no_q_zeroing": ([("            self.flat_grads[self._enc_slice] = 0   # the encoder took no part\n",
                           "            pass\n")], ("FAIL", "q=(mu, logvar) check")),
    "vae_heads_none": ([("            if self.enc.linears:    "
                         "# with hidden=() the heads read x itself: nothing further\n"
                         "                self.enc.backward(dh_mu + dh_logvar)\n",
                         "            self.enc.backward(dh_mu + dh_logvar)\n")],
                       ("error", "their backward returns None")),
    "vae_mean_over_k_missing": ([("        scale = 1.0 / (K * B)", "        scale = 1.0 / B")],
                                ("FAIL", "is wrong on case")),
    "vae_subclasses_reference": ([("class VAE:\n",
                                   "from numpyvae.model import VAE as _RefVAE\n\n\nclass VAE(_RefVAE):\n")],
                                 ("reference", "does not come from your file")),
}


# a student's own VAE.backward (another order, other temporaries): correct, and not similar
OWN_VAE_BACKWARD = """    def backward(self):
        c = self._cache
        x, eps, beta = c["x"], c["eps"], c["beta"]
        K, B, Z = eps.shape
        n = K * B
        d_out = [-g.reshape(n, self.x_dim) / n for g in self.lik.grad(x, *c["outs"])]
        dz = self._decode_backward(d_out).reshape(K, B, Z)
        sigma = np.exp(0.5 * c["logvar"])
        if c["kl"] == "mc":
            dz = dz + beta / n * c["mc"][1]
        g_mu = dz.sum(axis=0)
        g_lv = 0.5 * sigma * np.sum(dz * eps, axis=0)
        if c["kl"] == "closed":
            g_mu = g_mu + beta * c["mu"] / B
            g_lv = g_lv + 0.5 * beta * np.expm1(c["logvar"]) / B
        else:
            g_mu = g_mu + beta / n * c["mc"][2].sum(axis=0)
            g_lv = g_lv + beta / n * c["mc"][3].sum(axis=0)
        self.dmu, self.dlogvar = g_mu, g_lv
        if not c["encoder"]:
            self.flat_grads[self._enc_slice] = 0
            return
        h = self.enc_mu.backward(g_mu), self.enc_logvar.backward(g_lv)
        if len(self.enc.linears) > 0:
            self.enc.backward(h[0] + h[1])
"""


def _backward_span(text):
    """(start, end) of VAE.backward in a generated student file."""
    i = text.index("    def backward(self):", text.index("class VAE"))
    j = text.find("\n    def ", i + 10)
    return i, len(text) if j < 0 else j + 1


def _own_vae(text):
    i, j = _backward_span(text)
    return text[:i] + OWN_VAE_BACKWARD + text[j:]


def _pasted_vae(text):
    """The reference VAE.backward with every local name changed, comments and docstring gone."""
    import io
    import tokenize
    i, j = _backward_span(text)
    names = {"cache": "memo", "x": "inp", "mu": "m", "logvar": "lv", "eps": "noise",
             "beta": "b_", "K": "ns", "B": "nb", "Z": "nz", "scale": "w", "douts": "g_out",
             "dz": "g_z", "dz_kl": "gz_k", "dmu": "g_m", "dlogvar": "g_v", "dmu_kl": "gm_k",
             "dlogvar_kl": "gv_k", "dh_mu": "h1", "dh_logvar": "h2", "d": "t", "n": "nm"}
    out, prev = [], None
    for tok in tokenize.generate_tokens(io.StringIO(text[i:j]).readline):
        if tok.type == tokenize.COMMENT:
            tok = tok._replace(string="")
        elif tok.type == tokenize.STRING and prev is not None and prev.string == ":":
            tok = tok._replace(string='"pasted"')          # the docstring
        elif tok.type == tokenize.NAME and tok.string in names and \
                (prev is None or prev.string != "."):
            tok = tok._replace(string=names[tok.string])
        out.append(tok)
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.COMMENT):
            prev = tok
    return text[:i] + tokenize.untokenize(out) + text[j:]


NUMERICAL_VAE_BACKWARD = """    def backward(self):
        c = self._cache
        kw = dict(eps=c["eps"], beta=c["beta"], kl=c["kl"])
        if not c["encoder"]:
            kw["q"] = (c["mu"], c["logvar"])
        p, g = self.flat_params, np.zeros_like(self.flat_params)
        for i in range(p.size):           # every parameter, one at a time
            old = p[i]
            p[i] = old + 1e-5
            fp = self.forward(c["x"], **kw).loss
            p[i] = old - 1e-5
            fm = self.forward(c["x"], **kw).loss
            p[i] = old
            g[i] = (fp - fm) / 2e-5
        self.forward(c["x"], **kw)
        self.flat_grads[...] = g
        self.dmu, self.dlogvar = np.zeros_like(c["mu"]), np.zeros_like(c["logvar"])
"""


def _numerical_vae(text):
    i, j = _backward_span(text)
    return text[:i] + NUMERICAL_VAE_BACKWARD + text[j:]


# VAE submissions made from the answer key by a function: (make, expected)
VAE_MADE = {"vae_own_style": (_own_vae, ("pass", "")),
            "vae_pasted_renamed": (_pasted_vae, ("pass", "")),
            "vae_numerical_diff": (_numerical_vae,
                                   ("timeout", "too slow: numerical differentiation?"))}


def _notes(report):
    """The review notes about the submission (not the grading machine's protections)."""
    return [r for r in report.review if r["kind"] != "protection_off"]


def _exercises(spec):
    return list(spec)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus_key")
    return stubs.make_assignment(root / "key", [V], solutions=True)


@pytest.fixture(scope="module")
def graded(key, tmp_path_factory):
    """Every corpus submission graded (two at a time), with its wall-clock time."""
    root = tmp_path_factory.mktemp("corpus_vae")
    jobs = []
    for name, spec in CORPUS.items():
        path = HERE / f"{name}.py"
        if (HERE / name).is_dir():     # a folder, as uploaded: the grader finds the file
            path = root / name         # (notebooks kept as .ipynb.txt, which linters skip)
            for f in (HERE / name).rglob("*"):
                if f.is_file():
                    dest = path / f.relative_to(HERE / name)
                    dest = dest.with_name(dest.name.removesuffix(".txt")) \
                        if dest.name.endswith(".ipynb.txt") else dest
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(f.read_bytes())
        elif not path.exists():        # kept as .txt so linters and compileall skip it
            path = root / f"{name}.py"
            path.write_text((HERE / f"{name}.txt").read_text(encoding="utf-8"), encoding="utf-8")
        jobs.append((name, path, _exercises(spec)))
    text = key.read_text(encoding="utf-8")
    for name, (repl, _) in VAE_VARIANTS.items():
        t = text
        for old, new in repl:
            assert t.count(old) == 1, (name, old)
            t = t.replace(old, new)
        path = root / f"{name}.py"
        path.write_text(t, encoding="utf-8")
        jobs.append((name, path, [V]))
    for name, (make, _) in VAE_MADE.items():
        path = root / f"{name}.py"
        path.write_text(make(text), encoding="utf-8")
        jobs.append((name, path, [V]))

    def one(job):
        name, path, ex = job
        t0 = time.monotonic()
        report = grader.grade(path, ex, limits=LIMITS, hidden=True, student_id=name)
        return name, (report, time.monotonic() - t0)

    with ThreadPoolExecutor(4) as pool:    # mostly waiting on child processes
        return dict(pool.map(one, jobs))


def test_the_corpus_is_large_enough():
    assert len(CORPUS) + len(VAE_VARIANTS) >= 40
    assert {p.stem for p in HERE.glob("*.py")} | {p.stem for p in HERE.glob("*.txt")} \
        | {p.name for p in HERE.glob("folder_*") if p.is_dir()} == set(CORPUS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_submission(graded, name):
    report, _ = graded[name]
    for ex, want in CORPUS[name].items():
        row = report.row(ex)
        want = want if isinstance(want, list) else [want]
        assert any(row.status == s and p in row.message for s, p in want), \
            f"{name}/{ex}: {row.status}: {row.message!r}, expected one of {want}"
        assert row.score == (row.max_score if row.status == "pass" else 0)
    assert report.passed == all(w == ("pass", "") for w in CORPUS[name].values())
    json.dumps(report.to_gradescope(), allow_nan=False)      # strict JSON, always


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VAE_VARIANTS) + sorted(VAE_MADE))
def test_vae_submission(graded, name):
    report, _ = graded[name]
    status, piece = {**VAE_VARIANTS, **VAE_MADE}[name][1]
    row = report.row(V)
    assert row.status == status, f"{name}: {row.status}: {row.message}"
    assert piece in row.message, f"{name}: {row.message!r} lacks {piece!r}"


def test_grading_one_submission_costs_about_a_second(key):
    """CPU seconds (this process and its children), so a loaded machine does not decide."""
    import resource

    def cpu():
        me, kids = resource.getrusage(resource.RUSAGE_SELF), \
            resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    t0 = cpu()
    report = grader.grade(key, [V], hidden=True, student_id="timing")
    spent = cpu() - t0
    assert report.passed and spent < 2.0, spent      # about 0.5 s here (VAE, hidden cases)


@pytest.mark.slow
def test_huge_prints_are_captured_and_capped(graded):
    report, _ = graded["huge_print"]
    assert 0 < len(report.student_output) <= LIMITS.output_cap + 100
    assert "more characters cut" in report.student_output
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert "xxxxxxxxxx" not in text        # never mixed into the machine-readable report


@pytest.mark.slow
def test_a_nan_gradient_gives_strict_json(graded):
    report, _ = graded["relu_nan"]
    assert report.row(R).max_error is None or report.to_dict()["results"][0]["max_error"] is None
    json.loads(json.dumps(report.to_gradescope(), allow_nan=False))


@pytest.mark.slow
def test_patching_the_grader_in_the_child_does_not_reach_the_parent(graded):
    from numpyvae import gradcheck
    assert gradcheck.PASS == 1e-6 and gradcheck.rel_error([1.0], [0.0]) == 1.0
    assert graded["patch_grader"][0].row(R).status in ("FAIL", "reference")
    notes = graded["patch_grader"][0].review                     # flagged for a human look
    assert any(n["kind"] == "mentions" and "numpyvae" in n["message"] for n in notes), notes
    assert not [n for n in graded["relu_correct"][0].review if n["kind"] == "mentions"]


def test_the_instructor_is_told_what_to_review(graded):
    """Not scored, but in the report (and results.json): numerical differentiation that ran
    out of time on the large case, and imports of automatic differentiation libraries."""
    kinds = {r["kind"]: r for r in graded["linear_numerical_diff"][0].review}
    assert "numerical_differentiation" in kinds
    assert kinds["numerical_differentiation"]["exercise"] == L
    forbidden = [r["message"] for r in graded["autograd_import"][0].review
                 if r["kind"] == "forbidden_import"]
    assert any("jax" in m for m in forbidden) and any("torch" in m for m in forbidden) \
        and any("autograd" in m for m in forbidden)
    assert _notes(graded["linear_correct"][0]) == []
    assert graded["linear_correct"][0].row(L).status == "pass"     # the large case, derived


def test_one_mistake_costs_every_student_the_same(key, tmp_path):
    """A wrong Sigmoid backward under 40 student ids: one score. Hidden cases vary shapes and
    values, never which functions a case runs through (the VAE cases keep their likelihood
    and activation; none uses a sigmoid unless the instructor's manifest says so)."""
    old = "        return dy * self.y * (1 - self.y)\n"
    text = key.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / "sigmoid_wrong.py"
    path.write_text(text.replace(old, "        return dy * self.y\n"), encoding="utf-8")

    def one(i):
        r = grader.grade(path, ["sigmoid_backward", V], hidden=True, student_id=f"s{i:03d}",
                         limits=LIMITS)
        return r.points, r.status("sigmoid_backward"), r.status(V)

    with ThreadPoolExecutor(4) as pool:
        scores = set(pool.map(one, range(40)))
    assert scores == {(4.0, "FAIL", "pass")}, scores


def test_the_graded_file_of_a_folder_is_named(graded):
    found = graded["folder_stub_and_notebook"][0].found
    assert "graded student_vae.ipynb (2 of 2 exercises written)" in found
    assert "student_vae.py (0 written)" in found
    assert "student_vae (1).py" in graded["folder_misnamed_in_subfolder"][0].found
    assert _notes(graded["folder_stub_and_notebook"][0]) == []      # a notebook is not suspect


def test_pasted_source_is_reported_with_its_similarity(graded):
    """numpyvae's source with renamed names scores near 1 against the reference and is
    reported; a student's own correct solution scores low and is not."""
    for name, ex in (("vae_pasted_renamed", V), ("cholesky_pasted_renamed", CH)):
        report = graded[name][0]
        sim = [r for r in report.review if r["kind"] == "similarity"]
        assert len(sim) == 1 and sim[0]["exercise"] == ex, report.review
        assert report.row(ex).similarity >= 0.95, report.row(ex).similarity
    for name, ex in (("vae_own_style", V), ("cholesky_correct", CH), ("iwae_correct", IW),
                     ("straight_through_correct", ST), ("reparam_correct", P)):
        report = graded[name][0]
        assert report.row(ex).status == "pass"
        assert report.row(ex).similarity < 0.7, (name, report.row(ex).similarity)
        assert not [r for r in report.review if r["kind"] == "similarity"]



def test_gradescope_grades_the_finished_notebook_beside_the_stub(tmp_path):
    """On Gradescope's layout, the stub uploaded beside the finished notebook: the notebook is
    graded and results.json says which file was."""
    from numpyvae.teaching import cli
    kit = stubs.make_assignment(tmp_path / "kit", [R, K]).parent
    ag = tmp_path / "autograder"
    (ag / "results").mkdir(parents=True)
    sub = ag / "submission"
    sub.mkdir()
    src = HERE / "folder_stub_and_notebook"
    (sub / "student_vae.py").write_bytes((src / "student_vae.py").read_bytes())
    (sub / "student_vae.ipynb").write_bytes((src / "student_vae.ipynb.txt").read_bytes())
    assert cli.main(["autograde", "--root", str(ag), "--manifest",
                     str(kit / "assignment.json")]) == 0
    data = json.loads((ag / "results" / "results.json").read_text(encoding="utf-8"))
    assert data["score"] == 2.0, data
    assert "graded student_vae.ipynb (2 of 2 exercises written)" in data["output"]
