"""Shared pytest fixtures for numpyvae.

The real data sets live outside the repository, in ``<repo>/../shared/data``
(layout: ``mnist/``, ``fashion-mnist/``, ``frey/``, ``binarized-mnist/``).
The environment variable ``NUMPYVAE_SHARED`` overrides that location. Tests
that need the files take the ``shared_data`` or ``shared_file`` fixture and
are skipped, not failed, when the files are absent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same examples every run (a failure there is reproducible, never a fluke);
# locally hypothesis keeps exploring new ones. Select with HYPOTHESIS_PROFILE=ci|dev.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# The fused kernels' compiled module (numpyvae/speed/_aot.py) is built at most once a session, into
# a temporary folder that child processes inherit: never into the user's ~/.cache.
_KERNEL_CACHE = tempfile.mkdtemp(prefix="numpyvae-test-kernels-")
os.environ["NUMPYVAE_CACHE_DIR"] = _KERNEL_CACHE


def pytest_unconfigure(config):
    shutil.rmtree(_KERNEL_CACHE, ignore_errors=True)


_DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data_dir() -> Path | None:
    """Path of the shared data folder, or None if it does not exist."""
    env = os.environ.get("NUMPYVAE_SHARED")
    path = Path(env).expanduser() if env else _DEFAULT_SHARED
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (skips the test when it is absent)."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data folder not found (set NUMPYVAE_SHARED or place it at ../shared/data)")
    return path


@pytest.fixture(scope="session")
def shared_file(shared_data):
    """Factory: ``shared_file("mnist/t10k-labels-idx1-ubyte.gz")`` -> Path, or skip if missing."""

    def get(relpath: str) -> Path:
        path = shared_data / relpath
        if not path.exists():
            pytest.skip(f"shared data file not found: {path}")
        return path

    return get
