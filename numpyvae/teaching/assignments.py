"""Old import path of the teaching kit, kept so existing scripts keep working.

The kit now lives in modules named for what they hold: ``exercises`` (the table and
the cases), ``stubs`` (the student kit, notes, notebook), ``grader`` (the parent
side: isolation, reference finite differences, verdicts, reports, Gradescope),
``sandbox`` (the child side), ``gradescope`` (the autograder zip) and ``cli``.
"""
from __future__ import annotations

import sys

from .cli import main
from .exercises import DEFAULT_EXERCISES, EXERCISES, Exercise, select
from .grader import STATUSES, ExerciseResult, GradeReport, Limits, grade
from .stubs import MANIFEST_FILE, STUDENT_FILE, make_assignment
from .. import gradcheck

__all__ = ["EXERCISES", "DEFAULT_EXERCISES", "Exercise", "ExerciseResult", "GradeReport",
           "Limits", "STATUSES", "make_assignment", "grade", "main", "select", "gradcheck",
           "STUDENT_FILE", "MANIFEST_FILE"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
