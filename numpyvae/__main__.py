"""``python -m numpyvae``: the same command as the ``numpyvae`` console script."""

import sys

from .cli import main

__derivation_exempt__ = True

if __name__ == "__main__":
    sys.exit(main())
