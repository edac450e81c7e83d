"""Each fused kernel against the plain NumPy it replaces, at a training step's shapes.

One thread, float32, the best of many repeats in this thread's CPU time (a loaded machine
disturbs the best repeat least). For the two models of ``bench_vs_torch.py``: Adam over the
whole parameter buffer, the Bernoulli term with its gradient on (B, 784) (exp and log1p from
NumPy), the same with the output layer's bias and its gradient (the step's kernel, with exp and
log1p of its own; the fused column includes copying the logits it writes), bias and activation
forward and backward on the first hidden layer's (B, H), the reparameterization with the KL and
their backward on (B, Z); then a whole ``Trainer.train_step`` plain, fused with each kernel
called from Python (``fused._Step``), fused as two compiled calls (``fused._CompiledStep``), and its
matrix products alone (``bench_vs_torch.run_matmul``'s products, timed the same way). Last, float32
exp, log1p and tanh one element at a time: NumPy's, the C library's called from a compiled loop, and
the kernels' own arithmetic (note 18, eq. (18.10)).

    python benchmarks/bench_fused_parts.py
"""
from __future__ import annotations

import argparse
import os
import sys
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_vs_torch import MODELS, _data  # noqa: E402

from numpyvae import VAE, kl, layers, likelihoods, optim, reparam  # noqa: E402
from numpyvae.speed import fused  # noqa: E402
from numpyvae.training.trainer import TrainConfig, Trainer  # noqa: E402


def best(f, repeats, inner=10):
    f()
    out = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        for _ in range(inner):
            f()
        out = min(out, (time.thread_time() - t0) / inner)
    return 1e3 * out


def parts(m, repeats):
    rng = np.random.default_rng(0)
    f4 = np.float32
    B, Z, H = m["batch"], m["z_dim"], m["hidden"][0]
    vae = VAE(784, Z, hidden=m["hidden"], activation=m["activation"], seed=0, dtype=f4)
    n = vae.flat_params.size
    theta, g = rng.standard_normal(n, dtype=f4), rng.standard_normal(n, dtype=f4) * f4(1e-2)
    plain_adam, mm, vv = optim.Adam(1e-3), np.zeros(n, f4), np.zeros(n, f4)
    plain_adam.step(theta, g)
    x = (rng.random((B, 784)) < 0.13).astype(f4)
    logits = rng.standard_normal((1, B, 784), dtype=f4)
    y0 = rng.standard_normal((B, H), dtype=f4)
    b = rng.standard_normal(H, dtype=f4)
    dy = rng.standard_normal((B, H), dtype=f4)
    act = layers.make_activation(m["activation"])
    mu, lv = rng.standard_normal((B, Z), dtype=f4), rng.standard_normal((B, Z), dtype=f4) * f4(0.1)
    eps, dz = rng.standard_normal((1, B, Z), dtype=f4), rng.standard_normal((1, B, Z), dtype=f4)
    t = [1]
    out_b = rng.standard_normal(784, dtype=f4)
    _, _, sig, em1 = fused._reparameterize_kl(mu, lv, eps)     # what the step's backward reuses

    def fused_adam():
        t[0] += 1
        fused.adam_update(theta, g, mm, vv, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, t=t[0])

    def plain_bias_act():
        y = y0.copy()
        y += b
        return act.forward(y)

    def plain_back():
        dx = act.backward(dy)
        return dx, dx.sum(axis=0)

    def plain_rkl():
        return reparam.reparameterize(mu, lv, eps), kl.kl_normal_std(mu, lv)

    def plain_rkl_back():
        dm, dl = reparam.reparameterize_backward(dz, lv, eps)
        gm, gl = kl.kl_normal_std_grad(mu, lv)
        dm += (1 / B) * gm
        dl += (1 / B) * gl
    def plain_output():
        lg = logits + out_b                                      # Linear.forward's bias
        grad = (-1 / B) * likelihoods.bernoulli_log_prob_grad(x, lg)
        return likelihoods.bernoulli_log_prob(x, lg), grad, grad.sum(axis=(0, 1))
    plain_bias_act()
    rows = [
        ("Adam's update", lambda: plain_adam.step(theta, g), fused_adam),
        ("Bernoulli log p and gradient",
         lambda: (likelihoods.bernoulli_log_prob(x, logits), likelihoods.bernoulli_log_prob_grad(x, logits)),
         lambda: fused.bernoulli_log_prob_and_grad(x, logits, -1 / B)),
        ("the same + output bias, own exp", plain_output,
         lambda: fused.bernoulli_output(x, logits.copy(), out_b, -1 / B)),
        ("bias + activation forward", plain_bias_act,
         lambda: fused.bias_act_forward(y0.copy(), b, m["activation"])),
        ("activation backward + bias sum", plain_back,
         lambda: fused.act_bias_backward(dy, y0, m["activation"])),
        ("reparameterization + KL", plain_rkl, lambda: fused.reparameterize_kl(mu, lv, eps)),
        ("their backward", plain_rkl_back,
         lambda: fused.reparameterize_kl_backward(dz, mu, lv, eps, 1 / B, sig, em1)),
    ]
    return [(name, best(p, repeats), best(f, repeats)) for name, p, f in rows]


def steps(m, repeats):
    x = _data(4096)
    B = m["batch"]
    out = {}
    sgemm = fused._sgemm_address()
    # "calls": the fused step calling each kernel and product from Python (fused._Step);
    # "fused": the compiled step, when NumPy's BLAS can be called from it (fused._CompiledStep)
    for mode in ("plain", "calls", "fused"):
        vae = VAE(784, m["z_dim"], hidden=m["hidden"], activation=m["activation"], seed=0, dtype=np.float32)
        opt = optim.Adam(1e-3)
        if mode != "plain":
            fused.attach(vae)
            opt = fused.FusedAdam(1e-3)
        tr = Trainer(vae, x, None, TrainConfig(epochs=1, batch_size=B, progress=False), optimizer=opt)
        batches = [tr._minibatch(np.arange(i * B, (i + 1) * B), np.float32) for i in range(8)]
        i = [0]

        def step(tr=tr, batches=batches, i=i):
            tr.train_step(batches[i[0] % 8])
            i[0] += 1
        fused._sgemm = 0 if mode == "calls" else sgemm     # read when the model's step is made
        try:
            out[mode] = best(step, repeats)
        finally:
            fused._sgemm = sgemm
    vae = VAE(784, m["z_dim"], hidden=m["hidden"], activation=m["activation"], seed=0, dtype=np.float32)
    rng = np.random.default_rng(0)
    prods = []
    for _, lin in vae._named_linears():
        a = rng.standard_normal((B, lin.W.shape[0]), dtype=np.float32)
        dy = rng.standard_normal((B, lin.W.shape[1]), dtype=np.float32)
        prods.append((a, lin.W, dy, np.empty_like(lin.W), lin.input_grad))

    def products():
        for a, W, dy, dW, need_dx in prods:
            a @ W
            np.matmul(a.T, dy, out=dW)
            if need_dx:
                dy @ W.T
    out["products"] = best(products, repeats)
    return out


def functions(repeats, n=100_352):
    """exp, log1p and tanh over n float32 numbers (128 x 784): NumPy's, a compiled loop calling
    the C library's (``math``), and a compiled loop of the kernels' own arithmetic (``_numba``)."""
    import math

    import numba

    from numpyvae.speed import _numba as k
    rng = np.random.default_rng(0)
    a = -np.abs(rng.standard_normal(n, dtype=np.float32)) * np.float32(4)    # exp(-|l|)'s range
    t, y, out = np.exp(a), rng.standard_normal(n, dtype=np.float32), np.empty(n, np.float32)
    rows = []
    for name, arg, np_f, lib_f, own_f in (("exp", a, np.exp, math.exp, k.exp_f32),
                                          ("log1p", t, np.log1p, math.log1p, k.log1p_unit_f32),
                                          ("tanh", y, np.tanh, math.tanh, k.tanh_f32)):
        def loop(f):
            @numba.njit
            def each(v, o):
                for i in range(v.size):
                    o[i] = f(v[i])
            return each
        lib, own = loop(lib_f), loop(own_f)
        rows.append((name, best(lambda f=np_f, v=arg: f(v, out=out), repeats),
                     best(lambda f=lib, v=arg: f(v, out), repeats), best(lambda f=own, v=arg: f(v, out), repeats)))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30, help="repeats per measurement (the best is kept)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats: expected a positive integer")
    if not fused.available():
        print(f"the fused kernels are off ({fused.reason}): nothing to compare")
        return
    print(f"one thread, float32, best of {args.repeats} in CPU time, ms; numba load/compile "
          f"{fused.warm_up():.2f} s; load {os.getloadavg()[0]:.2f}")
    for m in MODELS.values():
        print(f"\n{m['label']}")
        print(f"  {'piece':<34} {'plain':>7} {'fused':>7} {'ratio':>6}")
        for name, p, f in parts(m, args.repeats):
            print(f"  {name:<34} {p:7.3f} {f:7.3f} {p / f:6.2f}")
        s = steps(m, max(3, args.repeats // 3))
        print(f"  whole step: plain {s['plain']:.2f} ms, kernels called from Python {s['calls']:.2f} ms, "
              f"compiled {s['fused']:.2f} ms; products alone {s['products']:.2f} ms; products / step: "
              f"plain {s['products'] / s['plain']:.3f}, kernels called {s['products'] / s['calls']:.3f}, "
              f"compiled {s['products'] / s['fused']:.3f}")
        if not fused._sgemm_address():
            print("  (NumPy's BLAS cannot be called from compiled code here: 'compiled' is the kernels called)")
    print("\nexp, log1p and tanh of 100,352 float32 numbers, ms: NumPy, a compiled loop calling the C "
          "library, a compiled loop of the kernels' own (eq. (18.10))")
    for name, p, lib, own in functions(args.repeats):
        print(f"  {name:<6} {p:7.3f} {lib:7.3f} {own:7.3f}")
    print(f"\nload {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
