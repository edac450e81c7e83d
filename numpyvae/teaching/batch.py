"""Grade a folder of submissions at once, without Gradescope.

``numpyvae assignment grade DIR --manifest assignment.json`` finds one submission per
student in DIR (a file ``ID.py`` / ``ID.ipynb``, or a subfolder ``ID/`` holding it),
grades each in its own clean temporary folder, several at a time (one per core), and
writes ``grades.csv`` (one row per student) and ``results/ID.json`` (the full report)
into the output folder. Run as root, each submission running at the same moment has a
user of its own and cannot see DIR, the output folder or another's folder (see
``isolation``); as an ordinary user they share the grader's user, and the report says so.
"""
from __future__ import annotations

import csv
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .submission import find_submission

__all__ = ["find_submissions", "grade_folder", "missing_report"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", name) or "student"


def find_submissions(folder, file_name="student_vae.py") -> list:
    """[(student id, path or None)] for every student in ``folder``, sorted by id.

    A subfolder is one student: the folder itself, graded on its .py or notebook with the
    most exercises written (``submission.find_submission``; None when it holds neither).
    A .py or .ipynb file directly in ``folder`` is a student named by the file's stem."""
    folder = Path(folder)
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():      # the file with the most exercises written (grade() says which)
            out.append((entry.name, entry if find_submission(entry, file_name)[0] else None))
        elif entry.suffix in (".py", ".ipynb"):
            out.append((entry.stem, entry))
    return out


def missing_report(path, settings, student_id):
    """The report of a submission that is not there: every exercise 0, saying so."""
    from .exercises import select
    from .grader import ExerciseResult, GradeReport
    report = GradeReport(str(path), student_id=student_id)
    report.results = [ExerciseResult(e.id, "error", message=f"no submission found at {path}",
                                     max_score=float(settings["points"].get(e.id, e.points)))
                      for e in select(settings["exercises"])]
    return report


def _one(args):
    from .grader import grade
    sid, path, settings = args
    if path is None:
        return sid, missing_report(f"(nothing in the folder of {sid})", settings, sid)
    try:
        return sid, grade(path, student_id=sid, **settings)
    except Exception as exc:         # noqa: BLE001 - one bad submission never stops a batch
        report = missing_report(path, settings, sid)
        for r in report.results:
            r.message = f"the grader failed on this submission: {type(exc).__name__}: {exc}"
        report.add_review("grader_failure", f"{type(exc).__name__}: {exc}")
        return sid, report


def grade_folder(folder, out, settings, manifest=None, jobs=None, force=False) -> dict:
    """Grade every submission in ``folder``; write ``out/grades.csv`` and
    ``out/results/ID.json``; -> {student id: GradeReport}. settings: ``grade``'s
    keyword arguments (exercises, seed, hidden, points, ...)."""
    from .grader import write_json
    folder, out = Path(folder).resolve(), Path(out).resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"--out {out} is not empty; pass --force to write into it")
    if out == folder or folder in out.parents:
        raise ValueError(f"--out must lie outside the submissions folder {folder}")
    subs = find_submissions(folder, (manifest or {}).get("file", "student_vae.py"))
    if not subs:
        raise ValueError(f"path: no submissions (.py, .ipynb or subfolders) in {folder}")
    (out / "results").mkdir(parents=True, exist_ok=True)
    settings = dict(settings, hide=list(settings.get("hide", [])) + [str(folder), str(out)])
    jobs = max(1, jobs or os.cpu_count() or 1)
    reports = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(_one, (sid, path, settings)) for sid, path in subs]
        for fut in as_completed(futures):
            sid, report = fut.result()
            reports[sid] = report
            write_json(out / "results" / f"{_safe(sid)}.json", report.to_dict())
            print(f"{sid}: {report.points:g} / {report.max_points:g}", flush=True)
    _csv(out / "grades.csv", [(sid, reports[sid]) for sid, _ in subs])
    off = {n["message"] for r in reports.values() for n in r.review
           if n["kind"] == "protection_off"}
    for m in sorted(off):
        print(f"WARNING {m}")
    print(f"graded {len(subs)} submissions: {out / 'grades.csv'} and {out / 'results'}/")
    return reports


def _csv(path, rows) -> None:
    exercises = [r.exercise for r in rows[0][1].results] if rows else []
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "file", "points", "max_points", *exercises,
                    "statuses", "review"])
        for sid, r in rows:
            w.writerow([sid, r.path, f"{r.points:g}", f"{r.max_points:g}",
                        *[f"{x.score:g}" for x in r.results],
                        "; ".join(f"{x.exercise}={x.status}" for x in r.results),
                        " | ".join(f"[{n['kind']}]" + (f" {n['exercise']}:" if n.get("exercise")
                                                       else "") + f" {n['message']}"
                                   for n in r.review)])
    os.replace(tmp, path)
