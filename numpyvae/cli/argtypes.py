"""Argument types shared by the ``numpyvae`` command and the example scripts.

Each is an ``argparse`` ``type=``: it returns the value, or raises ``ArgumentTypeError`` with
what was expected, which the parser prints as one line (exit code 2) before anything runs.
``ScriptParser`` is the parser of a script: one error line, no usage block, and no option
abbreviations (``--epoch`` is not taken for ``--epochs``).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import errors

__all__ = ["number", "positive_int", "nonneg_int", "positive_float", "nonneg_float", "int_between",
           "out_folder", "ScriptParser"]


def number(cast: Callable[[str], Any], lower: float, strict: bool, what: str) -> Callable[[str], Any]:
    """An argparse type: ``cast(text)``, finite and above ``lower`` (or at least it if not strict)."""
    def parse(text: str) -> Any:
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        # math.isfinite(float(v)): a 30-digit integer is a valid seed, and too big for np.isfinite
        try:
            finite = math.isfinite(float(v))
        except OverflowError:
            finite = cast is int
        if not finite or v < lower or (strict and v == lower):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v
    return parse


positive_int = number(int, 0, True, "a positive integer")
nonneg_int = number(int, 0, False, "a non-negative integer")
positive_float = number(float, 0.0, True, "a positive number")
nonneg_float = number(float, 0.0, False, "a non-negative number")


def int_between(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer with ``lo <= v <= hi``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer from {lo} to {hi}, got {text!r}")
        return v
    return parse


def out_folder(text: str) -> Path:
    """An argparse type: a folder to write into, existing or to be made. Refused here, before
    anything is written: an existing file, a path through a file, a folder that is not writable."""
    if not text:
        raise argparse.ArgumentTypeError("expected a folder name, got ''")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is an existing file, not a folder; choose another")
    probe = path
    while not probe.exists():                   # the nearest part of the path that exists
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{text} goes through the file {probe}, which is not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"the folder {probe} is not writable; choose another")
    return path


class ScriptParser(argparse.ArgumentParser):
    """A script's parser: a bad argument is one line ``PROG: error: ...`` and exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(errors.error_line(message, prog=self.prog) + "\n")
        raise SystemExit(errors.EXIT_BAD_INPUT)
