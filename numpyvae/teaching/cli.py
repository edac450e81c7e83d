"""The ``numpyvae assignment`` command line: make, grade, gradescope.

    numpyvae assignment make OUT_DIR [--exercises a,b] [--points id=N] [--notebook] ...
    numpyvae assignment grade FILE [--manifest assignment.json | --exercises a,b]
                                    [--student-id ID] [--gradescope results.json] [--json]
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
from .grader import GradeReport, Limits, ExerciseResult, grade, write_gradescope
from .gradescope import build_autograder
from .stubs import MANIFEST_FILE, make_assignment

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
    p = argparse.ArgumentParser(prog=PROG, description="Make gradient exercises from numpyvae, "
                                "grade them in an isolated process, export to Gradescope.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="write the student kit into OUT_DIR")
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
    g = sub.add_parser("grade", help="grade a student's file (or notebook) in a child process")
    g.add_argument("path")
    g.add_argument("--exercises", default=None, help="comma-separated ids to grade")
    g.add_argument("--manifest", default=None,
                   help="assignment.json from the instructor's copy: its exercises, points, "
                        "seed and options")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--student-id", default=None, help="derive the hidden cases from this id")
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
    z = sub.add_parser("gradescope", help="build the Gradescope autograder zip of a kit")
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


def _manifest(path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("exercises"), list):
            raise KeyError("exercises")
        return data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _Bad(f"manifest: cannot read an exercise list from {path} "
                   f"({type(exc).__name__}: {exc})") from None


def _grade(args) -> int:
    man = _manifest(args.manifest) if args.manifest else {}
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
    if not Path(args.path).is_file():
        if args.gradescope:     # the LMS still needs a results file
            chosen = select(exercises)
            report = GradeReport(args.path, student_id=args.student_id)
            report.results = [ExerciseResult(e.id, "error", message=f"no submission found "
                                             f"at {args.path}", max_score=float(points.get(
                                                 e.id, e.points))) for e in chosen]
            write_gradescope(report, args.gradescope)
            print(report)
            return 1
        raise _Bad(f"path must be an existing student file, got {args.path}")
    report = grade(args.path, exercises, seed=seed, student_id=args.student_id, hidden=hidden,
                   points=points, partial_credit=partial, limits=limits,
                   vae_settings=man.get("vae_settings"))
    if args.gradescope:
        write_gradescope(report, args.gradescope)
    print(json.dumps(report.to_dict(), indent=2, allow_nan=False) if args.json else report)
    return 0 if report.passed else 1


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
        return _grade(args)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
