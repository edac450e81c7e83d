"""The ``numpyvae assignment`` command line: make, grade, gradescope.

    numpyvae assignment make OUT_DIR [--exercises a,b] [--points id=N] [--notebook] ...
    numpyvae assignment grade FILE [--manifest assignment.json | --exercises a,b]
                                    [--student-id ID ...] [--gradescope results.json] [--json]
    numpyvae assignment grade DIR --manifest assignment.json [--out DIR] [--jobs N]
    numpyvae assignment autograde --root /autograder --manifest ...   (run_autograder)
    numpyvae assignment gradescope OUT_DIR --out autograder.zip

``main(argv) -> int``: 0 when made / when every graded exercise passed, 1 when
some did not, 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .exercises import EXERCISES, select
from .grader import GradeReport, Limits, grade, write_json
from .batch import grade_folder, missing_report
from .gradescope import (VISIBILITIES, build_autograder, failure_results, group_report,
                         write_checked)
from .stubs import MANIFEST_FILE, make_assignment
from .submission import find_submission

__all__ = ["main"]

PROG = "numpyvae assignment"


class _Bad(ValueError):
    pass


def _points(values) -> dict:
    out = {}
    for item in values or []:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise _Bad(f"--points takes id=number pairs, got {part!r}")
            k, v = part.split("=", 1)
            try:
                out[select([k.strip()])[0].id] = float(v)
            except ValueError as exc:
                raise _Bad(f"--points {part!r}: {exc}") from None
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, allow_abbrev=False, description="Make gradient exercises from numpyvae, "
                                "grade them in an isolated process, export to Gradescope.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", allow_abbrev=False, help="write the student kit into OUT_DIR")
    m.add_argument("out_dir")
    m.add_argument("--exercises", default=None,
                   help=f"comma-separated ids (default all): {','.join(EXERCISES)}")
    m.add_argument("--points", action="append", help="points per exercise, e.g. vae_backward=4")
    m.add_argument("--partial-credit", action="store_true",
                   help="split an exercise's points over its gradients (dW, db, dx, ...)")
    m.add_argument("--seed", type=int, default=0, help="seed of the cases (recorded)")
    m.add_argument("--no-hidden-cases", action="store_true",
                   help="grade on the visible cases only (default: add hidden random shapes)")
    m.add_argument("--notebook", action="store_true", help="also write student_vae.ipynb")
    m.add_argument("--force", action="store_true", help="overwrite a non-empty OUT_DIR")
    m.add_argument("--show-answers", action="store_true",
                   help="keep the derivatives in the docstrings and notes (default: hidden)")
    m.add_argument("--solutions", action="store_true",
                   help="keep the reference bodies: an answer key for testing the grader")
    m.add_argument("--notes", default=None, help="folder of the derivation notes to copy")
    m.add_argument("--vae-settings", default=None, metavar="LIK:ACT,...",
                   help="the likelihood and activation of each VAE case, e.g. "
                        "bernoulli:relu,gaussian:tanh,gaussian_learned:softplus (the default); "
                        "hidden cases keep them and vary only shapes and values")
    m.add_argument("--timeout", type=float, default=10.0,
                   help="grading: seconds per exercise (recorded in the manifest)")
    m.add_argument("--memory-mb", type=int, default=2048,
                   help="grading: memory limit of the child process (recorded)")
    m.add_argument("--visibility", action="append", metavar="[ID=]WHEN",
                   help="Gradescope visibility of the exercises' results: visible, "
                        "after_due_date, after_published or hidden; ID=WHEN for one exercise")
    g = sub.add_parser("grade", allow_abbrev=False, help="grade a student's file (or notebook) in a child process, "
                                     "or every submission in a folder")
    g.add_argument("path", help="a submission, or a folder of them (one file or subfolder "
                                "per student: a batch)")
    g.add_argument("--out", default=None, help="batch: the folder for grades.csv and one "
                                               "results file per student (default PATH-grades)")
    g.add_argument("--jobs", type=int, default=None,
                   help="batch: submissions graded at once (default: the number of cores)")
    g.add_argument("--force", action="store_true", help="batch: write into a non-empty --out")
    g.add_argument("--exercises", default=None, help="comma-separated ids to grade")
    g.add_argument("--manifest", default=None,
                   help="assignment.json from the instructor's copy: its exercises, points, "
                        "seed and options")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--student-id", action="append", default=None,
                   help="derive the hidden cases from this id; repeat it for a group "
                        "(graded on every member's cases, the lowest score counts)")
    hid = g.add_mutually_exclusive_group()
    hid.add_argument("--hidden", dest="hidden", action="store_true", default=None,
                     help="add the hidden cases (default with --manifest)")
    hid.add_argument("--visible-only", dest="hidden", action="store_false",
                     help="grade the visible cases only")
    g.add_argument("--points", action="append", help="points per exercise, e.g. vae_backward=4")
    g.add_argument("--partial-credit", action="store_true", default=None,
                   help="split points over gradients (default: the manifest's setting)")
    g.add_argument("--timeout", type=float, default=None, help="seconds per exercise")
    g.add_argument("--memory-mb", type=int, default=None)
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    g.add_argument("--gradescope", default=None, metavar="PATH",
                   help="write Gradescope's results.json to PATH")
    a = sub.add_parser("autograde", allow_abbrev=False, help="what the zip's run_autograder runs (Gradescope's "
                                         "folder layout under --root)")
    a.add_argument("--root", default="/autograder")
    a.add_argument("--manifest", required=True)
    z = sub.add_parser("gradescope", allow_abbrev=False, help="build the Gradescope autograder zip of a kit")
    z.add_argument("assignment_dir")
    z.add_argument("--out", required=True, help="the zip to write")
    z.add_argument("--force", action="store_true", help="overwrite --out")
    return p


def _vae_settings(text):
    if text is None:
        return None
    out = []
    for part in text.split(","):
        if part.count(":") != 1:
            raise _Bad(f"--vae-settings takes likelihood:activation pairs, got {part!r}")
        lik, act = (s.strip() for s in part.split(":"))
        out.append({"likelihood": lik, "activation": act})
    return out


def _set_visibility(manifest_path, values) -> None:
    """Record Gradescope visibility in the manifest: 'WHEN' for all, 'ID=WHEN' for one."""
    data = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    vis = {e: "visible" for e in data["exercises"]}
    for item in values:
        for part in item.split(","):
            ex, _, when = part.rpartition("=")
            if when not in VISIBILITIES:
                raise _Bad(f"--visibility takes one of {', '.join(VISIBILITIES)}, got {when!r}")
            for e in ([select([ex])[0].id] if ex else list(vis)):
                if e not in vis:
                    raise _Bad(f"--visibility: {e} is not an exercise of this kit")
                vis[e] = when
    data["visibility"] = vis
    write_json(manifest_path, data)


def _manifest(path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("exercises"), list):
            raise KeyError("exercises")
        return data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _Bad(f"manifest: cannot read an exercise list from {path} "
                   f"({type(exc).__name__}: {exc})") from None


def _settings(args, man) -> dict:
    """grade()'s keyword arguments from the manifest and the command line."""
    if args.manifest and args.exercises:
        raise _Bad("give --exercises or --manifest, not both")
    exercises = args.exercises or man.get("exercises")
    if exercises is not None:
        select(exercises)        # a bad id is bad input, before anything runs
    points = dict(man.get("points") or {})
    points.update(_points(args.points))
    seed = args.seed if args.seed is not None else int(man.get("seed", 0))
    hidden = args.hidden if args.hidden is not None else bool(man.get("hidden_cases", False))
    partial = args.partial_credit if args.partial_credit is not None \
        else bool(man.get("partial_credit", False))
    limits = Limits(timeout=args.timeout or float(man.get("timeout", 10.0)),
                    memory_mb=args.memory_mb or int(man.get("memory_mb", 2048)))
    hide = [str(Path(args.manifest).resolve().parent)] if args.manifest else []
    return dict(exercises=exercises, seed=seed, hidden=hidden, points=points,
                partial_credit=partial, limits=limits, hide=hide,
                vae_settings=man.get("vae_settings"))


def grade_group(path, ids, settings, extra_hide=()) -> GradeReport:
    """Grade ``path`` on the hidden cases of every id in ``ids`` (a group); one report."""
    kw = dict(settings, hide=list(settings["hide"]) + [str(h) for h in extra_hide])
    return group_report([grade(path, student_id=i, **kw) for i in (ids or [None])])


def _grade(args) -> int:
    man = _manifest(args.manifest) if args.manifest else {}
    settings = _settings(args, man)
    if Path(args.path).is_dir():
        return _batch(args, man, settings)
    if not Path(args.path).is_file():
        if args.gradescope:     # the LMS still needs a results file
            report = missing_report(args.path, settings, ", ".join(args.student_id or []) or None)
            write_checked(args.gradescope, report.to_gradescope(man.get("visibility")))
            print(report)
            return 1
        raise _Bad(f"path must be an existing student file, got {args.path}")
    extra = [Path(args.gradescope).resolve().parent] if args.gradescope else []
    try:
        report = grade_group(args.path, args.student_id, settings, extra)
    except RuntimeError as exc:       # the grader itself (its walls, its interpreter) failed
        if args.gradescope:
            write_checked(args.gradescope, failure_results(str(exc)))
        raise _Bad(f"the grader could not grade {args.path}: {exc}") from None
    if args.gradescope:
        write_checked(args.gradescope, report.to_gradescope(man.get("visibility")))
    print(json.dumps(report.to_dict(), indent=2, allow_nan=False) if args.json else report)
    return 0 if report.passed else 1


def _batch(args, man, settings) -> int:
    """Grade every submission in a folder, several at once; grades.csv and one file each."""
    out = Path(args.out) if args.out else Path(str(Path(args.path).resolve()) + "-grades")
    if args.student_id:
        raise _Bad("a batch takes each student's id from the file or folder name; "
                   "drop --student-id")
    reports = grade_folder(args.path, out, settings, manifest=man, jobs=args.jobs,
                           force=args.force)
    return 0 if reports and all(r.passed for r in reports.values()) else 1


def _autograde(args) -> int:
    """Gradescope's run: every group member's cases, results.json written and checked.
    Any failure of the autograder itself still leaves a results.json that says so."""
    import traceback
    root = Path(args.root)
    results = root / "results" / "results.json"
    try:
        man = _manifest(args.manifest)
        ids = []
        try:
            meta = json.loads((root / "submission_metadata.json").read_text(encoding="utf-8"))
            for u in meta.get("users") or []:
                ident = u.get("sid") or u.get("email") or u.get("name") or u.get("id")
                if ident not in (None, "") and str(ident) not in ids:
                    ids.append(str(ident))
        except (OSError, ValueError, AttributeError):
            pass
        ids = ids or ["student"]
        sub = root / "submission"
        path = sub / man.get("file", "student_vae.py")
        if sub.is_dir() and find_submission(sub, path.name)[0] is not None:
            path = sub      # grade() picks the file with the most exercises written, and says so
        ns = argparse.Namespace(manifest=args.manifest, exercises=None, points=None, seed=None,
                                hidden=None, partial_credit=None, timeout=None, memory_mb=None)
        settings = _settings(ns, man)
        if path.exists():
            report = grade_group(path, ids, settings, [root / "results", root / "source",
                                                       sub])
        else:
            report = missing_report(path, settings, ", ".join(ids))
        write_checked(results, report.to_gradescope(man.get("visibility")))
        print(report)
        return 0
    except BaseException as exc:      # noqa: BLE001 - the LMS must always get a results file
        text = traceback.format_exc()
        print(text, file=sys.stderr)
        try:
            write_checked(results, failure_results(f"{type(exc).__name__}: {exc}\n{text}"))
        except BaseException as again:      # noqa: BLE001
            print(f"could not even write the failure results: {again}", file=sys.stderr)
        return 1


def main(argv=None) -> int:
    """Entry point of ``numpyvae assignment``."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:     # --help (0) or a usage error (2): return, do not exit
        return int(exc.code or 0)
    try:
        if args.command == "make":
            path = make_assignment(
                args.out_dir, args.exercises, solutions=args.solutions,
                hide_answers=not args.show_answers, points=_points(args.points),
                partial_credit=args.partial_credit, seed=args.seed,
                hidden_cases=not args.no_hidden_cases, notebook=args.notebook,
                force=args.force, notes_dir=args.notes, timeout=args.timeout,
                memory_mb=args.memory_mb, vae_settings=_vae_settings(args.vae_settings))
            if args.visibility:
                _set_visibility(path.parent / MANIFEST_FILE, args.visibility)
            print(f"wrote the kit in {path.parent}: {', '.join(sorted(p.name for p in path.parent.iterdir()))}")
            if json.loads((path.parent / MANIFEST_FILE).read_text(encoding="utf-8"))["notes"] is None:
                print("note: no derivations/ folder found next to the package, so the kit has no "
                      "notes/; pass --notes DIR (a clone's derivations/)", file=sys.stderr)
            print(f"give students everything except {MANIFEST_FILE}; grade with\n"
                  f"  numpyvae assignment grade SUBMISSION --manifest {path.parent / MANIFEST_FILE}")
            return 0
        if args.command == "gradescope":
            out = build_autograder(args.assignment_dir, args.out, force=args.force)
            print(f"wrote {out}: upload it as the autograder of a Gradescope programming assignment")
            return 0
        if args.command == "autograde":
            return _autograde(args)
        return _grade(args)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
