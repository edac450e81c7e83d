"""Build a Gradescope autograder zip from an assignment folder.

The zip holds ``setup.sh`` (installs NumPy and the bundled numpyvae source),
``run_autograder`` (grades ``/autograder/submission/student_vae.py`` or the notebook
against the bundled manifest and writes ``/autograder/results/results.json``), the
manifest and a copy of the numpyvae package source it was made with.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

from .stubs import MANIFEST_FILE, package_version

__all__ = ["build_autograder"]

_SETUP = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -e
apt-get update -y && apt-get install -y python3 python3-pip || true
python3 -m pip install --upgrade pip || true
python3 -m pip install /autograder/source/numpyvae_src \
  || python3 -m pip install --break-system-packages /autograder/source/numpyvae_src
"""

_RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission; results.json is always written.
# AUTOGRADER_ROOT (default /autograder) lets you try the script on your own machine.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$ROOT/source"
SID=$(python3 -c "import json, sys; u = json.load(open(sys.argv[1]))['users'][0]; \\
print(u.get('sid') or u.get('email') or u.get('name') or 'student')" \\
    "$ROOT/submission_metadata.json" 2>/dev/null || echo student)
FILE="$ROOT/submission/{file}"
if [ ! -f "$FILE" ]; then
  NB=$(ls "$ROOT"/submission/*.ipynb 2>/dev/null | head -n 1)
  if [ -n "$NB" ]; then FILE="$NB"; fi
fi
mkdir -p "$ROOT/results"
python3 -m numpyvae assignment grade "$FILE" --manifest "$ROOT/source/{manifest}" \\
    --gradescope "$ROOT/results/results.json" --student-id "$SID"
exit 0
"""

_PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "numpyvae"
version = "{version}"
requires-python = ">=3.10"
dependencies = ["numpy>=1.23", "matplotlib>=3.5", "tqdm>=4.60"]

[project.scripts]
numpyvae = "numpyvae.cli:main"

[tool.setuptools.packages.find]
include = ["numpyvae*"]

[tool.setuptools.package-data]
"numpyvae.data" = ["*.gz", "*.txt", "*.md"]
"""


def build_autograder(assignment_dir, out, force=False) -> Path:
    """Write the autograder zip for the kit in ``assignment_dir`` to ``out``."""
    kit = Path(assignment_dir)
    manifest_path = kit / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(f"assignment_dir must hold {MANIFEST_FILE} (made by 'assignment make'), "
                         f"got {kit}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        file_name = manifest["file"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"manifest: cannot read {manifest_path} ({exc})") from None
    if manifest.get("solutions"):
        raise ValueError("this kit was made with --solutions (an answer key); make the "
                         "student kit without it for Gradescope")
    out = Path(out)
    if out.exists() and not force:
        raise ValueError(f"out {out} exists; pass --force to overwrite it")
    pkg = Path(__file__).resolve().parent.parent
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", suffix=".zip.tmp")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", _SETUP),
                           ("run_autograder", _RUN.format(file=file_name, manifest=MANIFEST_FILE))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
        z.write(manifest_path, MANIFEST_FILE)
        z.writestr("numpyvae_src/pyproject.toml", _PYPROJECT.format(version=package_version()))
        for f in sorted(pkg.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                z.write(f, "numpyvae_src/numpyvae/" + f.relative_to(pkg).as_posix())
    os.replace(tmp, out)
    return out
