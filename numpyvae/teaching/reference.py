"""The reference side of grading: what a case's gradients are, from numpyvae itself.

Central differences of the reference forward for the small cases (so the reference backward is
never trusted there), and the reference backward for a case too large to difference one
coordinate at a time (that backward is itself checked against central differences in the tests).
"""
from __future__ import annotations

import numpy as np

from .. import gradcheck

__all__ = ["reference_numeric", "reference_analytic"]


def reference_analytic(ex, meta, a) -> dict:
    """The reference backward for a case too large to difference coordinate by coordinate
    (every reference backward is itself checked against central differences in the tests)."""
    from .. import layers, model
    if ex.kind == "layer":
        layer = layers.Linear(meta["D_in"], meta["D_out"], np.random.default_rng(0))
        layer.W[...], layer.b[...] = a["W"], a["b"]
        layer.forward(a["x"])
        dx = layer.backward(a["g"])
        return {"dx": dx, "dW": layer.dW.copy(), "db": layer.db.copy()}
    if ex.kind == "function":     # e.g. a convolution's backward on a large image batch
        import importlib
        spec = ex.function
        ref = getattr(importlib.import_module(f"numpyvae.{ex.module}"), ex.qualname)
        out = ref(*[float(a[n]) if n in spec.consts else a[n] for n in spec.call])
        return dict(zip(spec.outputs, out))
    vae = model.VAE(meta["x_dim"], meta["z_dim"], hidden=tuple(meta["hidden"]),
                    likelihood=meta["likelihood"], activation=meta["activation"], c=meta["c"],
                    seed=meta["seed"])
    for k, v in a.items():
        if k.startswith("p."):
            vae.params[k[2:]][...] = v
    vae.forward(a["x"], eps=a["eps"], beta=meta["beta"], kl=meta["kl"])
    vae.backward()
    return {"g." + n: g.copy() for n, g in vae.grads.items()}


def reference_numeric(ex, meta, arrays) -> dict:
    """Central differences of the reference forward for one case: {gradient name: array}."""
    from .. import layers, model
    a = {k: np.array(v, dtype=np.float64) for k, v in arrays.items()}
    if meta.get("large"):
        return reference_analytic(ex, meta, a)
    num = gradcheck.numerical_grad
    if ex.kind == "layer":
        cls = getattr(layers, meta["layer"])
        if meta["layer"] == "Linear":
            layer = cls(meta["D_in"], meta["D_out"], np.random.default_rng(0))
            layer.W[...], layer.b[...] = a["W"], a["b"]
        else:
            layer = cls()

        def f():
            return float(np.sum(layer.forward(a["x"]) * a["g"]))
        out = {"dx": num(f, a["x"])} if meta.get("input_grad", True) else {}
        if meta["layer"] == "Linear":
            out["dW"], out["db"] = num(f, layer.W), num(f, layer.b)
        return out
    if ex.kind == "function":
        spec = ex.function
        import importlib
        fwd = getattr(importlib.import_module(f"numpyvae.{ex.module}"), spec.forward)

        def f():
            y = fwd(*[float(a[n]) if n in spec.consts else a[n] for n in spec.args])
            return float(np.sum(y * a["g"]) if spec.weighted else np.sum(y))
        return {o: num(f, a[w]) for w, o in zip(spec.wrt, spec.outputs)}
    vae = model.VAE(meta["x_dim"], meta["z_dim"], hidden=tuple(meta["hidden"]),
                    likelihood=meta["likelihood"], activation=meta["activation"], c=meta["c"],
                    seed=meta["seed"])
    for k, v in a.items():
        if k.startswith("p."):
            vae.params[k[2:]][...] = v
    kw = dict(eps=a["eps"], beta=meta["beta"], kl=meta["kl"])
    if meta.get("q"):
        kw["q"] = (a["q_mu"], a["q_logvar"])

    def f():
        return vae.forward(a["x"], **kw).loss
    return {"g." + n: num(f, p) for n, p in vae.params.items()}
