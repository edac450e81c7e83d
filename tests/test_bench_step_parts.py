"""benchmarks/bench_step_parts.py still takes the real training step apart.

It wraps the functions a ``Trainer`` step calls (by name, some of them private); a renamed one
would leave a row out of the table. The script refuses that, and this test runs it, small, in
its own process (it fixes the BLAS thread count before NumPy loads).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step_parts.py"
ROWS = ("Linear forward (product + bias)", "Linear backward (products + bias sum)", "activations",
        "Bernoulli log p(x|z)", "Bernoulli gradient", "forward's checks and the eps draw",
        "reparameterization and KL", "Adam update", "minibatch copy", "finiteness check g . g",
        "the Python between the pieces (the rest)")


@pytest.mark.slow
def test_every_piece_of_the_step_is_timed():
    res = subprocess.run([sys.executable, str(SCRIPT), "--models", "tanh", "--bursts", "2", "--burst", "3"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    for row in ROWS:
        m = re.search(rf"^  {re.escape(row)}\s+(-?\d+\.\d+)\s", out, re.M)
        assert m, f"no row {row!r} in:\n{out}"
        if row != ROWS[-1]:         # the rest is a difference of timings and may come out near 0
            assert float(m.group(1)) > 0, f"{row!r} took no time:\n{out}"
    assert re.search(r"a step \d+\.\d+ ms; its products alone \d+\.\d+ ms", out)
    assert "must fit in" in out and "its memory floor" in out


def test_a_bad_model_name_is_refused():
    res = subprocess.run([sys.executable, str(SCRIPT), "--models", "sigmoid"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "--models" in res.stderr and "sigmoid" in res.stderr
