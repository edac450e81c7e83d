"""The ``numpyvae`` command: ``train``, ``gradcheck``, ``evaluate``, ``assignment``.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""

from .main import main

__all__ = ["main"]
