"""The example scripts check their arguments as the numpyvae command does: a bad value is one
line naming the option and what was expected, exit code 2, and nothing written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_error_line(err: str, script: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), err
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_out_naming_a_file_is_refused_and_the_file_kept(tmp_path, script):
    f = tmp_path / "results.txt"
    f.write_text("my results\n")
    done = _run(script, "--out", str(f), cwd=tmp_path)
    assert done.returncode == 2
    line = _one_error_line(done.stderr, script)
    assert "--out" in line and "existing file" in line
    assert f.read_text() == "my results\n" and sorted(os.listdir(tmp_path)) == ["results.txt"]


@pytest.mark.slow
@pytest.mark.parametrize("script,args,says", [
    ("13_conditional.py", ["--epochs", "-1"], "--epochs"),
    ("13_conditional.py", ["--epochs", "0"], "positive integer"),
    ("13_conditional.py", ["--grid-label", "12"], "from 0 to 9"),
    ("13_conditional.py", ["--epoch", "3"], "--epoch"),          # no abbreviations
    ("08_autoencoders_pca.py", ["--codes", "2", "0"], "--codes"),
    ("09_role_of_prior.py", ["--c", "-1"], "positive number"),
    ("07_bound_vs_likelihood.py", ["--ks", "10", "nan"], "--ks"),
    ("14_vqvae.py", ["--beta", "-0.5"], "non-negative"),
    ("05_maximum_entropy.py", ["--var", "inf"], "--var"),
    ("01_linear_gaussian_gap.py", ["--seed", "-3"], "--seed"),
])
def test_a_bad_number_is_one_line_and_writes_nothing(tmp_path, script, args, says):
    out = tmp_path / "figures"
    done = _run(script, "--out", str(out), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert says in _one_error_line(done.stderr, script)
    assert not out.exists()


@pytest.mark.slow
def test_out_through_a_file_is_refused(tmp_path):
    (tmp_path / "a").write_text("x")
    done = _run("10_graphical_model.py", "--out", str(tmp_path / "a" / "figs"), cwd=tmp_path)
    assert done.returncode == 2 and "not a folder" in _one_error_line(done.stderr, "10_graphical_model.py")
