"""Grade a submission: the parent side.

The submission never runs in this process. ``grade`` writes the cases of every
exercise into a job folder, starts ``sandbox.py`` in a child process (wall-clock
timeout per exercise, CPU-time, memory and file-size limits, its own process
group, output captured and capped), and reads back only arrays. Finite
differences of the *reference* forward are computed here, and the verdict is
decided here, so nothing the submission patches in its own process (gradcheck's
threshold, ``rel_error``, ...) reaches it. A child that exits, crashes, hangs or
runs out of memory costs the exercise it was running; a fresh child grades the rest.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import gradcheck
from .exercises import EXERCISES, build_cases, select
from .isolation import Plan, acquire, read_student_file, work_base
from .jsonfile import _finite, write_json
from .reference import reference_numeric as _reference_numeric
from .submission import allowed_import, find_submission, notebook_code

__all__ = ["ExerciseResult", "GradeReport", "grade", "Limits", "STATUSES", "write_gradescope"]

STATUSES = ("pass", "FAIL", "not attempted", "error", "timeout", "reference")
SANDBOX = Path(__file__).with_name("sandbox.py")
SANDBOX_NAME = "_numpyvae_sandbox.py"      # its copy in the submission's folder
REFERENCE_DIR = Path(__file__).resolve().parent.parent     # the numpyvae package


@dataclass
class Limits:
    """Per-child limits: wall-clock seconds per exercise (and for the import), memory, output."""
    timeout: float = 10.0
    memory_mb: int = 2048
    output_cap: int = 20000
    file_mb: int = 64


@dataclass
class ExerciseResult:
    """One graded exercise. status in STATUSES; score out of max_score points."""
    exercise: str
    status: str
    max_error: float | None = None
    message: str = ""
    score: float = 0.0
    max_score: float = 1.0
    gradients: dict = field(default_factory=dict)     # name -> passed
    execution_time: float = 0.0
    similarity: float | None = None    # to numpyvae's own code, names normalised (similarity.py)


@dataclass
class GradeReport:
    """All graded exercises. ``passed`` only when every graded row passed."""
    path: str
    results: list = field(default_factory=list)
    threshold: float = gradcheck.PASS
    student_output: str = ""
    student_id: str | None = None
    execution_time: float = 0.0        # seconds the student's code ran (the graded calls)
    grading_time: float = 0.0          # seconds the whole grading took
    found: str = ""      # which file of a submitted folder was graded, and why (or "")
    # notes for a human (the TA), never scored: {"kind", "exercise" (or None), "message"};
    # kinds: "mentions", "protection_off", "similarity", "numerical_differentiation",
    # "forbidden_import", "too_slow", ...
    review: list = field(default_factory=list)

    def add_review(self, kind: str, message: str, exercise: str | None = None) -> None:
        """Add a note for the TA (shown in the report, results.json and the batch CSV)."""
        self.review.append({"kind": str(kind), "exercise": exercise, "message": str(message)})

    @property
    def n_passed(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def points(self) -> float:
        return round(sum(r.score for r in self.results), 6)

    @property
    def max_points(self) -> float:
        return round(sum(r.max_score for r in self.results), 6)

    @property
    def score(self) -> str:
        return f"{self.n_passed} / {len(self.results)}"

    @property
    def passed(self) -> bool:
        return bool(self.results) and self.n_passed == len(self.results)

    def status(self, exercise: str) -> str:
        return self.row(exercise).status

    def row(self, exercise: str) -> ExerciseResult:
        for r in self.results:
            if r.exercise == exercise:
                return r
        raise KeyError(f"exercise {exercise!r} was not graded")

    def to_dict(self) -> dict:
        return _finite({"path": self.path, "score": self.score, "points": self.points,
                        "max_points": self.max_points, "threshold": self.threshold,
                        "student_id": self.student_id, "passed": self.passed,
                        "found": self.found,
                        "review": list(self.review),
                        "results": [vars(r) for r in self.results]})

    def to_gradescope(self, visibility=None) -> dict:
        """Gradescope's results.json (see ``gradescope.results_json``)."""
        from .gradescope import results_json
        return results_json(self, visibility)

    def __str__(self):
        w = max([len(r.exercise) for r in self.results] + [8])
        off = [n["message"] for n in self.review if n["kind"] == "protection_off"]
        lines = [f"WARNING {m}" for m in off] + [
                 f"grading {self.path}" + (f" (student {self.student_id})"
                                            if self.student_id else "")
                 + (f"\n{self.found}" if self.found else ""),
                 f"{'exercise':<{w}}  {'status':<13}  {'points':>9}  {'max rel err':>11}  note",
                 "-" * (w + 52)]
        for r in self.results:
            err = "-" if r.max_error is None else f"{r.max_error:.2e}"
            pts = f"{r.score:g}/{r.max_score:g}"
            lines.append(f"{r.exercise:<{w}}  {r.status:<13}  {pts:>9}  {err:>11}  "
                         f"{r.message}".rstrip())
        lines.append(f"score {self.score}, {self.points:g} / {self.max_points:g} points "
                     f"(pass: max relative error < {self.threshold:.0e})")
        for note in self.review:
            if note["kind"] == "protection_off":
                continue           # already the first line
            where = f" [{note['exercise']}]" if note.get("exercise") else ""
            lines.append(f"for the instructor ({note['kind']}){where}: {note['message']}")
        if self.student_output.strip():
            lines += ["", "the submission printed (captured, capped):",
                      _indent(self.student_output[:2000])]
        return "\n".join(lines)

    __repr__ = __str__


def _indent(text):
    return "\n".join("    " + ln for ln in text.splitlines())


def write_gradescope(report: GradeReport, path) -> Path:
    """Write ``report`` as Gradescope's results.json at ``path``."""
    return write_json(path, report.to_gradescope())


# --------------------------------------------------------------------------- the child
def _rlimits(limits: Limits, n_exercises: int) -> dict:
    """The child's resource limits; it sets them on itself before importing the submission
    (a preexec_fn is unsafe when the grader runs in threads)."""
    return {"RLIMIT_CPU": int(limits.timeout * (n_exercises + 1)) + 5,
            "RLIMIT_AS": limits.memory_mb * 2**20, "RLIMIT_FSIZE": limits.file_mb * 2**20,
            "RLIMIT_CORE": 0}


def _child_env():
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SYSTEMROOT") if k in os.environ}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0", PYTHONIOENCODING="utf-8")
    return env


def _progress(job):
    data = read_student_file(job / "progress", cap=1 << 20)
    return data.decode("utf-8", "replace").split() if data else []


def _student_json(path):
    """A JSON record the child wrote, read without trusting the file (None if unusable)."""
    data = read_student_file(path, cap=64 * 2**20)
    try:
        return None if data is None else json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return None


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        if proc.poll() is None:
            proc.kill()
    proc.wait()


def _exit_reason(code, limits):
    if code is None:
        return "did not finish"
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        extra = {"SIGXCPU": " (CPU-time limit)", "SIGKILL": " (killed: memory or time limit)",
                 "SIGSEGV": " (a crash)", "SIGXFSZ": " (output size limit)"}.get(str(sig), "")
        return f"the grading process was killed by {sig}{extra}"
    return f"the grading process ended with exit code {code} (os._exit or a crash?)"


def _run(job: Path, ids: list, limits: Limits, plan=None, inputs_fd=None) -> dict:
    """Run children until every exercise has a record or a problem. -> {id: (status, msg)}.

    plan: an ``isolation.Plan`` (the user, walls and interpreter of the children); every
    process of the submission's user is killed after each child, before anything it
    wrote is read. inputs_fd: the unlinked file holding the spec and the cases."""
    problems = {}
    plan = plan or Plan()
    out = tempfile.TemporaryFile()          # the children's own stdout/stderr, never theirs to touch
    try:
        for _ in range(len(ids) + 2):      # each child finishes an exercise or loses one
            pending = [i for i in ids if i not in problems
                       and not (job / f"out_{i}.json").exists()]
            if not pending:
                return problems
            if os.path.lexists(job / "progress"):
                os.unlink(job / "progress")
            done = [i for i in ids if i not in pending]
            args = ["--job", str(job), "--skip", ",".join(list(problems) + done) or ","]
            if inputs_fd is not None:
                args += ["--inputs-fd", str(inputs_fd)]
            env = _child_env()
            proc = subprocess.Popen(plan.argv(job, job / SANDBOX_NAME, args, env),
                                    cwd=job, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=env, start_new_session=True,
                                    pass_fds=() if inputs_fd is None else (inputs_fd,))
            t_step, current = time.monotonic(), None
            # a whole-child deadline too: a thread or an exit handler can hang between steps
            deadline = t_step + limits.timeout * (len(pending) + 2)
            while proc.poll() is None:
                time.sleep(0.01)
                if time.monotonic() > deadline:
                    _kill(proc)
                    break
                words = _progress(job)
                state = words[-2:] if len(words) >= 2 and words[-2] == "start" else None
                now_current = state[1] if state else ("import" if not words else None)
                if now_current != current:
                    current, t_step = now_current, time.monotonic()
                if current is not None and time.monotonic() - t_step > limits.timeout:
                    _kill(proc)
                    break
            timed_out = proc.returncode is not None and current is not None \
                and time.monotonic() - t_step > limits.timeout
            _kill(proc)
            plan.kill_all()                # nothing the submission started runs on
            words = _progress(job)
            if proc.returncode == 111 and not words and plan.uid is not None:
                out.seek(0)
                tail = out.read()[-2000:].decode("utf-8", "replace")
                if "numpyvae launch:" in tail:     # the walls could not be built: our failure
                    raise RuntimeError("the grader could not start the isolated process: "
                                       + tail.strip().splitlines()[-1])
            if "import-failed" in words or not words:
                if not words:
                    msg = (f"importing the file did not finish within {limits.timeout:g} s "
                           "(an endless loop at import?)" if timed_out
                           else _exit_reason(proc.returncode, limits) + " while importing the file")
                    for i in pending:
                        problems[i] = ("timeout" if timed_out else "error", msg)
                return problems
            if len(words) >= 2 and words[-2] == "start":
                culprit = words[-1]
                if timed_out:
                    problems[culprit] = ("timeout", f"did not finish within {limits.timeout:g} s "
                                                    "(an endless loop?); the other exercises "
                                                    "were graded")
                else:
                    problems[culprit] = ("error", _exit_reason(proc.returncode, limits)
                                         + f" while running {culprit}")
            elif proc.returncode != 0:
                for i in pending:
                    if not (job / f"out_{i}.json").exists():
                        problems[i] = ("error", _exit_reason(proc.returncode, limits))
        for i in ids:
            if i not in problems and not (job / f"out_{i}.json").exists():
                problems[i] = ("error", "the grading process never reported this exercise")
        return problems
    finally:
        out.close()


# --------------------------------------------------------------------------- the reference side
_NUMERIC_CACHE: dict = {}


def _reference_cached(ex, meta, arrays) -> dict:
    """``_reference_numeric``, remembered for the visible cases (every student shares
    them, so a batch computes them once per process)."""
    if meta.get("secret"):
        return _reference_numeric(ex, meta, arrays)
    import hashlib
    h = hashlib.sha1(json.dumps(meta, sort_keys=True, default=str).encode())
    for k in sorted(arrays):
        h.update(k.encode() + np.ascontiguousarray(arrays[k], dtype=np.float64).tobytes())
    key = (ex.id, h.hexdigest())
    if key not in _NUMERIC_CACHE:
        if len(_NUMERIC_CACHE) > 512:
            _NUMERIC_CACHE.clear()
        _NUMERIC_CACHE[key] = _reference_numeric(ex, meta, arrays)
    return {k: v.copy() for k, v in _NUMERIC_CACHE[key].items()}


def _hint(a, n, meta):
    """A short reason a wrong gradient may be wrong, or ''."""
    if not np.all(np.isfinite(a)):
        return "; it contains NaN or inf"
    if a.shape != n.shape:
        if a.shape == n.shape[::-1] and a.ndim == 2:
            return f"; it has shape {a.shape}, the transpose of {n.shape}"
        return f"; it has shape {a.shape}, expected {n.shape}"
    if not np.any(a) and np.any(n):
        return "; it is all zeros"
    if a.ndim == 2 and a.shape == a.shape[::-1] and gradcheck.rel_error(a, n.T) < 1e-6 \
            and gradcheck.rel_error(a, n) > 1e-6:
        return "; it is the transpose of the right answer"
    nn = float(np.sum(n * n))
    if nn > 0 and a.size > 1:
        r = float(np.sum(a * n)) / nn
        if abs(r - 1) > 1e-3 and r != 0 and gradcheck.rel_error(a, r * n) < 1e-6:
            known = {2.0: "a factor of 2 too large", 0.5: "half the right value",
                     -1.0: "the right value with the wrong sign",
                     -0.5: "minus half the right value", -2.0: "-2 times the right value"}
            for v, text in known.items():
                if abs(r - v) < 1e-6:
                    return f"; it is {text}"
            for what in ("K", "B"):
                m = {"K": meta.get("k"), "B": meta.get("B")}[what]
                if m and m > 1 and (abs(r * m - 1) < 1e-6 or abs(r - m) < 1e-6):
                    return (f"; it is {r:.3g} times the right value (a mean over {what} where "
                            f"a sum belongs, or the other way round?)")
            return f"; it is {r:.4g} times the right value (a missing or extra constant factor)"
    return ""


def _where(meta):
    return ("hidden case " if meta.get("secret") else "case ") + f"[{meta['label']}]"


def _exception_message(ex, meta, row):
    msg = row["message"] + (f" (your {row['line']})" if row.get("line") else "")
    if row.get("type") == "TypeError" and "NoneType" in row["message"] and ex.kind == "vae" \
            and meta.get("hidden") == []:
        msg += (". With hidden=() the heads enc_mu and enc_logvar read x directly: they are "
                "first layers (input_grad False), their backward returns None, and there is "
                "no trunk to pass dh_mu + dh_logvar to")
    return f"{msg} on {_where(meta)}"


def _why(ex, name, a, n, meta, arrays):
    """Why a wrong gradient is wrong: the exercise's own diagnosis ('; it ...' replaces the
    general hint, anything else is added to it), else the general hint."""
    own = ""
    if ex.diagnose is not None and a is not None and arrays is not None:
        own = ex.diagnose(name, np.asarray(a, dtype=np.float64), n, meta,
                          {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})
    return own if own.startswith("; it ") else _hint(a, n, meta) + own


def _verdict(ex, metas, record, got, threshold, arrays=None):
    """(status, max_error, message, {gradient group: passed}), the first problem in case order."""
    groups = {g: True for g in ex.gradients}

    def group(name):
        if ex.kind == "vae":
            return "encoder" if name.startswith("g.enc.") else "decoder"
        return name

    def show(name):
        return f"grads['{name[2:]}']" if name.startswith("g.") else name

    worst, problems = 0.0, []
    for i, row in enumerate(record.get("cases", [])):
        meta, where = metas[i], _where(metas[i])
        st = row["status"]
        if problems and st != "ok":
            problems.append(f"{st} on {where}")
            break                 # the first problem in case order decides the status
        if st == "not attempted":
            return "not attempted", None, "still raises NotImplementedError", {}
        if st == "error":
            return "error", None, _exception_message(ex, meta, row), {}
        if st == "shape":
            return "FAIL", None, f"{row['message']} on {where}", {g: False for g in groups}
        if ex.kind == "layer" and row.get("rebound"):
            p = row["rebound"][0]
            return "FAIL", None, (
                f"backward rebinds self.{p} to a new array (self.{p} = ...); the VAE keeps views "
                f"of the original array, so write into it instead: self.{p}[...] = ... (or "
                f"np.matmul(..., out=self.{p}))"), {g: g != p for g in groups}
        if row.get("dx_not_none"):
            return "FAIL", None, ("with self.input_grad False (a first layer) backward must "
                                  "return None, after still writing self.dW and self.db, on "
                                  f"{where}"), {g: g != "dx" for g in groups}
        for name, n in record["numeric"][i].items():
            a = got.get(f"c{i}.{name}")
            if a is None:
                err, hint = float("inf"), "; it was not returned"
            else:
                err = (gradcheck.rel_error(a, n) if a.shape == n.shape
                       and np.all(np.isfinite(a)) else float("inf"))
                hint = "" if err < threshold else _why(ex, name, a, n, meta,
                                                         arrays[i] if arrays else None)
            worst = max(worst, err)
            if err < threshold:
                continue
            groups[group(name)] = False
            if ex.kind == "vae" and meta.get("q") and name.startswith("g.enc."):
                problems.append(
                    f"q=(mu, logvar) check on {where}: the encoder takes no part when q is "
                    f"given, so every enc.* gradient must be zero; {show(name)} is not "
                    "(write zeros into the encoder's part of the gradients)")
            elif a is not None and a.size and a.shape == n.shape and (
                    np.allclose(a - n, 1.0, rtol=0, atol=1e-6)
                    or (ex.kind == "vae" and np.all(a == 1.0))):
                problems.append(f"{show(name)} is wrong on {where}: it still holds the value "
                                "it had before backward, or adds to it (+=); overwrite it: "
                                "write with [...] = or out=, never +=, and never rebind it")
            else:
                problems.append(f"{show(name)} is wrong on {where}: relative error "
                                f"{_fmt(err)} (must be below {threshold:.0e}){hint}")
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        best = next((p for p in problems if "; it " in p), problems[0])   # one with a reason
        return "FAIL", worst, best + more, groups
    return "pass", worst, "", groups


def _fmt(err):
    return "inf (NaN or inf in your result)" if not np.isfinite(err) else f"{err:.1e}"


# --------------------------------------------------------------------------- grade
def _job_inputs(inputs, chosen, seed, student_id, hidden, vae_settings=None):
    """Write each exercise's cases into the zip ``inputs``; -> (spec entries, {id: cases})."""
    import io
    spec_ex, metas = [], {}
    for ex in chosen:
        cases = build_cases(ex, seed, vae_settings=vae_settings) + (
            build_cases(ex, seed, student_id, hidden=True, vae_settings=vae_settings)
            if hidden else [])
        metas[ex.id] = cases
        buf = io.BytesIO()
        np.savez(buf, **{f"c{i}.{k}": v for i, (_, arrs) in enumerate(cases)
                         for k, v in arrs.items()})
        inputs.writestr(f"in_{ex.id}.npz", buf.getvalue())
        spec_ex.append({"id": ex.id, "kind": ex.kind, "top": ex.top, "method": ex.method,
                        "function": None if ex.function is None else {
                            "forward": ex.function.forward, "args": list(ex.function.args),
                            "call": list(ex.function.call), "wrt": list(ex.function.wrt),
                            "outputs": list(ex.function.outputs),
                            "consts": list(ex.function.consts),
                            "weighted": ex.function.weighted},
                        "cases": [m for m, _ in cases]})
    return spec_ex, metas


def _inputs_file(spec, chosen, seed, student_id, hidden, vae_settings=None):
    """An unlinked file (gone when the last process holding it ends, even if this one is
    killed) with the spec and every case, reopened read-only: -> (fd, {id: cases})."""
    import zipfile
    if os.name == "nt":               # no descriptor passing: the job folder holds the files
        return None, _metas_to_files(spec, chosen, seed, student_id, hidden, vae_settings)
    spec.pop("job")
    f = tempfile.TemporaryFile()
    with zipfile.ZipFile(f, "w") as z:
        spec["exercises"], metas = _job_inputs(z, chosen, seed, student_id, hidden,
                                               vae_settings)
        z.writestr("spec.json", json.dumps(spec))
    f.flush()
    try:
        fd = os.open(f"/proc/self/fd/{f.fileno()}", os.O_RDONLY)
        f.close()
    except OSError:                   # no /proc: hand over the read-write descriptor
        fd = os.dup(f.fileno())
        f.close()
    return fd, metas


def _metas_to_files(spec, chosen, seed, student_id, hidden, vae_settings=None):
    """Windows: the spec and the cases as files in the job folder (``spec["job"]``)."""
    import zipfile
    job = Path(spec.pop("job"))
    buf = tempfile.SpooledTemporaryFile()
    with zipfile.ZipFile(buf, "w") as z:
        spec["exercises"], metas = _job_inputs(z, chosen, seed, student_id, hidden,
                                               vae_settings)
        for name in z.namelist():
            (job / name).write_bytes(z.read(name))
    (job / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    return metas


def _prepare(job, path, plan):
    """Copy the submission (a notebook's code) and the sandbox into ``job``; -> its path."""
    student = job / path.name
    if path.suffix == ".ipynb":
        student = job / "notebook_code.py"
        student.write_text(notebook_code(path), encoding="utf-8")
    else:
        shutil.copyfile(path, student)
    shutil.copyfile(SANDBOX, job / SANDBOX_NAME)
    for f in (student, job / SANDBOX_NAME):
        os.chmod(f, 0o644)
    plan.own(job)
    return student


def grade(path, exercises=None, seed=0, student_id=None, hidden=False, points=None,
          partial_credit=False, limits: Limits | None = None, keep_job=None,
          hide=(), vae_settings=None) -> GradeReport:
    """Grade the student's file in a child process; one row per exercise.

    exercises: ids (None: the file's ``__exercises__`` list, read without running it,
    else all). seed / student_id: the cases' values (hidden cases differ per
    student). hidden: add the hidden cases (random shapes). points: {id: points}
    (default: the table's). partial_credit: split an exercise's points over its
    gradients. limits: ``Limits``. hide: folders the submission must not see (run as
    root they are covered in its mount namespace: the results, other submissions). The
    report is always complete; ``review`` says which protections were off.
    vae_settings: the likelihood and activation of each VAE case (the manifest's;
    ``exercises.vae_configs``).
    """
    t0 = time.monotonic()
    path, found = Path(path), ""
    if path.is_dir():         # a submission folder: the file with the most exercises written
        file, found = find_submission(path)
        if file is None:
            raise ValueError(f"path: {found} in {path}")
        path = file
    if not path.is_file():
        raise ValueError(f"path must be an existing student file or folder, got {path}")
    if exercises is None:
        exercises = _listed_exercises(path)
    chosen = select(exercises)
    points = dict(points or {})
    for k in points:
        if k not in EXERCISES:
            raise ValueError(f"points: unknown exercise {k!r}")
    limits = limits or Limits()
    report = GradeReport(str(path), student_id=student_id, found=found)
    words = _review_words(path)
    if words:
        report.add_review("mentions", "the file mentions " + ", ".join(words)
                          + " (not scored; worth reading)")
    for m in _forbidden_imports(path):
        report.add_review("forbidden_import", m)
    plan = acquire(hide=[str(h) for h in hide] + [str(path.resolve().parent)])
    if plan.off:
        report.add_review("protection_off", "protections off: " + "; ".join(plan.off))
    job = Path(tempfile.mkdtemp(prefix="numpyvae-grade-", dir=work_base()))
    inputs_fd = None
    try:
        student = _prepare(job, path, plan)
        inputs_fd, metas = _inputs_file({
            "job": str(job), "student": str(student), "reference_dir": str(REFERENCE_DIR),
            "allowed": [str(job / SANDBOX_NAME)], "output_cap": limits.output_cap,
            "rlimits": _rlimits(limits, len(chosen))}, chosen, seed, student_id, hidden,
            vae_settings)
        problems = _run(job, [e.id for e in chosen], limits, plan, inputs_fd)   # kills after each child
        failed_import = _student_json(job / "import.json")
        if failed_import is not None and not isinstance(failed_import, dict):
            failed_import = {"error": "a malformed import record"}
        for ex in chosen:
            max_score = float(points.get(ex.id, ex.points))
            row = ExerciseResult(ex.id, "error", max_score=max_score)
            cases = metas[ex.id]
            if ex.id in problems:
                row.status, row.message = problems[ex.id]
                if row.status == "timeout":
                    _too_slow(report, row, job, cases, limits)
            elif failed_import is not None and _unreachable(failed_import.get("error")):
                row.status, row.message = "reference", _unreachable(failed_import.get("error"),
                                                                      ex.qualname)
            elif failed_import is not None:
                ni = failed_import.get("not_implemented")
                row.status = "not attempted" if ni else "error"
                row.message = f"cannot import the file: {failed_import.get('error')}" + (
                    f" ({failed_import['line']})" if failed_import.get("line") else "")
                if failed_import["error"].startswith("ModuleNotFoundError"):
                    row.message += (": only NumPy and Python's standard library can be "
                                    "imported here (README.md); remove the import")
            else:
                try:
                    import io
                    record = _student_json(job / f"out_{ex.id}.json")
                    raw = read_student_file(job / f"out_{ex.id}.npz")
                    if raw is None:
                        raise OSError("no arrays")
                    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                        got = {k: z[k] for k in z.files}
                    if not isinstance(record, dict) or len(record.get("cases", [])) > len(cases):
                        raise ValueError("a malformed record")
                    row.execution_time = float(record.get("seconds") or 0.0)
                except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
                    record, got = {"missing": True}, {}
                    row.message = f"the grading process left no usable result ({exc})"
                reference = record.get("foreign") or next(
                    (c["reference"] for c in record.get("cases", []) if c.get("reference")), "")
                blocked = next((c.get("message") for c in record.get("cases", [])
                                if _unreachable(c.get("message"))), None)
                if record.get("missing"):
                    row.message = row.message or f"the file has no {ex.qualname}"
                elif blocked:
                    row.status, row.message = "reference", _unreachable(blocked, ex.qualname)
                elif reference:
                    row.status = "reference"
                    row.message = ("scores 0: the graded code does not come from your file ("
                                   f"{reference}); write {ex.qualname} yourself instead of "
                                   "calling, importing or inheriting numpyvae's implementation")
                else:
                    with np.errstate(all="ignore"):
                        record["numeric"] = [_reference_cached(ex, m, a) for m, a in cases]
                        row.status, row.max_error, row.message, grads = _verdict(
                            ex, [m for m, _ in cases], record, got, report.threshold,
                            [a for _, a in cases])
                    row.gradients = grads
                    if row.status == "pass":
                        row.score = max_score
                    elif partial_credit and row.status == "FAIL" and grads:
                        row.score = round(max_score * sum(grads.values()) / len(grads), 4)
            report.results.append(row)
        _note_prerequisites(report)
        _note_similarity(report, chosen, path)
        printed = read_student_file(job / "output.txt", cap=limits.output_cap * 4 + 1000)
        if printed:
            report.student_output = printed.decode("utf-8", "replace")[:limits.output_cap + 200]
    finally:
        plan.release()
        if inputs_fd is not None:
            os.close(inputs_fd)
        if keep_job:
            shutil.copytree(job, keep_job, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(job, ignore_errors=True)
    report.grading_time = time.monotonic() - t0
    report.execution_time = sum(r.execution_time for r in report.results)   # the student's code
    return report


_REVIEW = ("numpyvae", "importlib", "__import__", "modules", "setprofile", "settrace",
           "sandbox", "__bases__", "__code__", "exec", "eval", "compile", "_exit", "subprocess",
           "ctypes", "signal", "builtins")


def _too_slow(report, row, job, cases, limits):
    """An exercise that ran out of time on its large hidden case, after the small ones."""
    try:
        i = int((read_student_file(job / f"case_{row.exercise}", cap=100) or b"").split()[0])
    except (ValueError, IndexError):
        return
    if not (0 <= i < len(cases) and cases[i][0].get("large")):
        return
    n = sum(v.size for k, v in cases[i][1].items() if k in ("x", "W", "b") or k.startswith("p."))
    row.message = (f"too slow: numerical differentiation? The small cases finished, but the "
                   f"large hidden case [{cases[i][0]['label']}] did not finish within "
                   f"{limits.timeout:g} s. A derived backward takes milliseconds there; "
                   f"finite differences need two forward passes for each of its {n} inputs "
                   "and parameters. Derive the gradient instead")
    report.add_review(
        "numerical_differentiation", f"{row.exercise}: too slow: numerical differentiation? "
        f"(the small cases finished; the large case [{cases[i][0]['label']}] ran out of "
        f"{limits.timeout:g} s)", row.exercise)


def _note_similarity(report, chosen, path):
    """Each row's similarity to the reference; a high one is reported (pasted source?)."""
    from . import similarity
    try:
        text = notebook_code(path) if path.suffix == ".ipynb" \
            else path.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return
    for ex, row in zip(chosen, report.results):
        if row.status == "reference":
            continue
        row.similarity = similarity.score(text, ex.module, ex.qualname)
        if row.similarity is not None and row.similarity >= similarity.REPORT:
            report.add_review(
                "similarity", f"{ex.id}: {ex.qualname} is {row.similarity:.2f} similar to "
                f"numpyvae's own (syntax compared with local names normalised; 1.00 is the "
                f"same code renamed): pasted source? (not scored; read it)", ex.id)


def _unreachable(error, qualname=None):
    """'' unless ``error`` says the submission tried to import numpyvae where it cannot;
    with ``qualname``, the message the student sees."""
    if not (isinstance(error, str) and "No module named 'numpyvae" in error):
        return ""
    return ("scores 0: the graded code does not come from your file (it imports numpyvae, "
            f"which a submission cannot reach); write {qualname or 'it'} yourself with NumPy only")


def _note_prerequisites(report):
    """A failing VAE row says which of its building blocks failed too (it uses them)."""
    blocks = [r.exercise for r in report.results
              if r.status != "pass" and EXERCISES[r.exercise].kind != "vae"]
    for r in report.results:
        if EXERCISES[r.exercise].kind == "vae" and r.status in ("FAIL", "error") and blocks:
            r.message += (f". Note: your VAE calls code that failed its own exercise "
                          f"({', '.join(blocks)}); fix that first")


def _review_words(path) -> list:
    """Names in the submission's code (not its docstrings or comments) worth a human look."""
    import ast
    try:
        tree = ast.parse(notebook_code(path) if Path(path).suffix == ".ipynb"
                         else Path(path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return []
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    words = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            words.add(n.id)
        elif isinstance(n, ast.Attribute):
            words.add(n.attr)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            words.update(p for a in n.names for p in a.name.split("."))
            words.update((getattr(n, "module", None) or "").split("."))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            words.update(w for w in _REVIEW if w in n.value)
    return [w for w in _REVIEW if w in words]


# libraries that compute gradients for the student (a derivative not derived)
AUTODIFF = ("autograd", "jax", "jaxlib", "torch", "tensorflow", "keras", "mxnet", "chainer",
            "theano", "tinygrad", "micrograd", "flax", "sympy", "numdifftools", "casadi",
            "paddle", "mlx")


def _forbidden_imports(path) -> list:
    """Messages for imports of anything but NumPy and the standard library (read with ast)."""
    import ast
    try:
        text = notebook_code(path) if Path(path).suffix == ".ipynb" \
            else Path(path).read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return []
    found = {}
    for n in ast.walk(tree):
        names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
            [n.module] if isinstance(n, ast.ImportFrom) and n.module and not n.level else []
        for name in names:
            top = name.split(".")[0]
            if not allowed_import(top):
                found.setdefault(top, n.lineno)
    out = []
    for top, line in found.items():
        if top in AUTODIFF:
            out.append(f"imports {top} (line {line}), an automatic differentiation library: "
                       "gradients it computes are not derived; read how the file uses it")
        elif top != "numpyvae":    # numpyvae is caught by the grader itself
            out.append(f"imports {top} (line {line}), which is not NumPy or the standard "
                       "library (the kit allows only those)")
    return out


def _listed_exercises(path):
    """The ``__exercises__`` list written in the file, read with ``ast`` (never run here)."""
    import ast
    try:
        text = notebook_code(path) if path.suffix == ".ipynb" \
            else path.read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(text)
    except (SyntaxError, ValueError, OSError):
        return None
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__exercises__"
                                                for t in node.targets):
            try:
                ids = [e for e in ast.literal_eval(node.value) if e in EXERCISES]
            except (ValueError, TypeError):
                return None
            return ids or None
    return None
