"""The teaching wing: exercises cut from this package's source, graded by gradient checks.

See docs/INSTRUCTORS.md. Bookkeeping rather than mathematics: no ``Derivation:`` lines.
"""
