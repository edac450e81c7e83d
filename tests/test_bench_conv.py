"""benchmarks/bench_conv.py still takes the convolutional VAE's step apart, run small in its own
process; its arguments are checked in one line. (Timings are printed, never asserted.)"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_conv.py"
ROWS = ("Conv2d forward", "Conv2d backward", "ConvTranspose2d forward", "ConvTranspose2d backward",
        "im2col copies", "col2im adds", "padding copies", "Linear forward", "Linear backward", "activations",
        "Bernoulli log p(x|z) and gradient", "forward's checks and the eps draw", "Adam")


def test_every_piece_of_the_conv_step_is_timed():
    res = subprocess.run([sys.executable, str(SCRIPT), "--parts", "parts", "--steps", "2", "--batch", "8"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    for row in ROWS:
        assert re.search(rf"^\s+{re.escape(row)}\s+\d+\.\d+ ms", res.stdout, re.M), (row, res.stdout)
    assert re.search(r"the step's 20 matrix products alone, same shapes: \d+\.\d+ ms", res.stdout), res.stdout


def test_bad_arguments_are_refused_in_one_line():
    for argv, word in ([["--parts", "speedy"], "--parts"], [["--steps", "0"], "--steps"],
                       [["--seeds", "a,b"], "--seeds"]):
        res = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and word in res.stderr.strip().splitlines()[-1], res.stderr
