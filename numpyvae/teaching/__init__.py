"""The teaching wing: exercises cut from this package's source, graded in an isolated process.

exercises (the table and the cases), stubs (the student kit, notes with answers hidden,
notebook), grader (parent side: isolation, reference finite differences, verdicts,
reports, Gradescope JSON), sandbox (child side), gradescope (autograder zip), cli
(``numpyvae assignment``). See docs/INSTRUCTORS.md. Bookkeeping rather than
mathematics: no ``Derivation:`` lines.
"""
