"""``python -m numpyvae``: the same command as the ``numpyvae`` console script."""

import sys

from .cli import main


if __name__ == "__main__":
    sys.exit(main())
