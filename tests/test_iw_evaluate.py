"""``numpyvae evaluate --iw-k K`` says how much memory the importance-sampled estimate takes
before it allocates any, refuses one that does not fit, and shows its progress; the estimate
of the memory bounds what the estimator really holds."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.cli import likelihood as cli_likelihood
from numpyvae.cli import main
from numpyvae.theory import estimators
from numpyvae.training import memory


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("iw") / "run"
    assert main(["train", "--out", str(out), "--max-train", "200", "--epochs", "1", "--hidden", "16",
                 "--z-dim", "2", "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_evaluate_says_the_memory_and_reports_progress(run, capsys):
    assert main(["evaluate", str(run / "checkpoint.npz"), "--iw-k", "40", "--max-examples", "300",
                 "--batch-size", "100"]) == 0
    cap = capsys.readouterr()
    plan = [ln for ln in cap.err.splitlines() if ln.startswith("log p(x) by importance sampling: K = 40")]
    assert len(plan) == 1 and "300 examples" in plan[0] and "of memory" in plan[0]
    assert "log p(x): 300 of 300 examples" in cap.err            # the last progress line
    assert "importance-sampled log p(x), K = 40" in cap.out


def test_evaluate_refuses_an_estimate_that_does_not_fit_before_computing(run, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 40_000_000)
    # the ELBO's own check passes (it needs less); only the importance sampling is refused
    monkeypatch.setattr(estimators, "_lse_accumulate",
                        lambda *a, **k: pytest.fail("allocated before the memory check"))
    monkeypatch.setattr(cli_likelihood, "log_likelihood",
                        lambda *a, **k: pytest.fail("computed before the memory check"))
    code = main(["evaluate", str(run / "checkpoint.npz"), "--iw-k", "5000", "--max-examples", "100"])
    err = capsys.readouterr().err
    assert code == 2 and "--iw-k 5000" in err and "available" in err and err.count("numpyvae: error:") == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hidden,lik", [((64,), "bernoulli"), ((32, 32), "gaussian"), ((), "gaussian_learned")])
def test_the_memory_estimate_bounds_the_real_peak(dtype, hidden, lik):
    vae = nv.VAE(784, 10, hidden=hidden, likelihood=lik, seed=0, dtype=dtype)
    x = (np.random.default_rng(1).random((60, 784)) < 0.3).astype(dtype)
    plan = estimators.log_likelihood_memory(vae, 60, 50, max_floats=300_000)
    tracemalloc.start()
    try:
        estimators.log_likelihood(vae, x, k=50, max_floats=300_000, rng=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= plan["bytes"] <= 4 * peak            # an upper bound, not a wild one
    # and it does not grow with K once the chunks are full: memory is bounded for any K
    assert estimators.log_likelihood_memory(vae, 60, 10**6, max_floats=300_000) == \
        estimators.log_likelihood_memory(vae, 60, 10**4, max_floats=300_000)
