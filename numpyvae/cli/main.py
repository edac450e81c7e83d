"""Command line interface: ``numpyvae train | gradcheck | evaluate | assignment``.

``main(argv)`` is the console-script entry point (and ``python -m numpyvae``); it returns the
exit code instead of calling ``sys.exit``. Bad arguments or inputs (unknown data set,
non-positive sizes, missing data directory, unreadable checkpoint, a model too large for this
machine, an existing run in the way, ...) end with a single line ``numpyvae: error: ...`` on
stderr and exit code 2; a diverged training run exits with 1, as does a failed gradient check;
Ctrl-C exits with 130 after saving what there is, SIGTERM and SIGHUP likewise with 143 and
129. Set ``NUMPYVAE_DEBUG=1`` to see full tracebacks instead. Which exception says what, with
which exit code, is decided in one place: ``cli/errors.py``.

The commands live beside this file: ``parser.py`` (options and defaults), ``train.py`` with
``runs.py`` (run directories, ``--resume``) and ``models.py`` (the model from its flags),
``evaluate.py`` (``evaluate`` and ``gradcheck``), ``common.py`` (what they share).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from . import errors
from .errors import PROG, CLIError
from .evaluate import cmd_evaluate, cmd_gradcheck
from .models import build_model
from .parser import TRAIN_DEFAULTS, build_parser, reparse_with_preset
from .train import cmd_train
from ..teaching.cli import main as assignment_main

__all__ = ["main", "build_parser", "build_model", "CLIError", "TRAIN_DEFAULTS"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``numpyvae`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    0 success; 1 training diverged or a gradient check failed; 2 bad arguments or inputs (one
    line ``numpyvae: error: ...`` on stderr, no traceback unless ``NUMPYVAE_DEBUG`` is set);
    130 interrupted (Ctrl-C); 143 and 129 stopped by SIGTERM and SIGHUP (as after Ctrl-C).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("NUMPYVAE_DEBUG"))
    if argv[:1] == ["assignment"]:
        return assignment_main(argv[1:])
    parser = build_parser()
    try:
        try:
            a = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return errors.exit_code(exc)
        a = reparse_with_preset(a, argv)
        if a.command is None:
            raise CLIError("a command is required: train, gradcheck, evaluate or assignment (see numpyvae --help)")
        if a.command == "train":
            return cmd_train(a)
        if a.command == "gradcheck":
            return cmd_gradcheck(a)
        return cmd_evaluate(a)
    except errors.USER_ERRORS as exc:
        if debug:
            raise
        print(errors.error_line(exc), file=sys.stderr)
        return errors.exit_code(exc)
    except KeyboardInterrupt as exc:
        print(f"{PROG}: " + errors.interrupt_words(exc), file=sys.stderr)
        return errors.exit_code(exc)
