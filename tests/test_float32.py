"""float32 in, float32 out: every public function of the core and of theory/, in float32.

Training may run in float32 (half the memory, about twice the speed). One float64 scalar in
a formula undoes that silently: under NumPy 2 (NEP 50) a NumPy float64 scalar such as
``np.log(c)`` is no longer "weak", so ``float32 array * np.float64(...)`` is float64, and
every step after it runs in float64. The test finds the public names from each module's
``__all__`` (a new function is covered, or this test names it), calls each one on float32
arrays with arguments built from its parameter names, and checks that every floating array
it returns, every gradient it writes and every parameter stays float32.

Deliberate exceptions are listed with the reason, and their documented dtype is checked too.
"""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import gradcheck, kl, layers, likelihoods, reparam
from numpyvae.model import VAE
from numpyvae.theory import amortization, autoencoders, estimators, linear_gaussian, maxent

F32 = np.float32
B, K, D, Z = 3, 2, 4, 4          # D == Z: x-shaped and z-shaped arguments share one shape


# ----------------------------------------------------------------------------- helpers
def _arrays(out, path="out"):
    """(path, array) for every NumPy array or scalar inside ``out`` (tuples, dicts, dataclasses)."""
    if isinstance(out, (np.ndarray, np.generic)):
        yield path, out
    elif dataclasses.is_dataclass(out) and not isinstance(out, type):
        for f in dataclasses.fields(out):
            yield from _arrays(getattr(out, f.name), f"{path}.{f.name}")
    elif isinstance(out, dict):
        for k, v in out.items():
            yield from _arrays(v, f"{path}[{k!r}]")
    elif isinstance(out, (tuple, list)):
        for i, v in enumerate(out):
            yield from _arrays(v, f"{path}[{i}]")


def _assert_dtype(out, where, dtype=F32):
    found = [(p, a.dtype) for p, a in _arrays(out) if np.issubdtype(a.dtype, np.floating)]
    wrong = [(p, str(t)) for p, t in found if t != dtype]
    assert not wrong, f"{where}: expected {np.dtype(dtype)}, got {wrong}"
    return len(found)


def _value(name, rng):
    """A float32 argument for a parameter called ``name`` (None if the name is unknown)."""
    g = rng.standard_normal
    if name == "x":
        return rng.uniform(0.05, 0.95, (B, D)).astype(F32)       # valid for every likelihood
    if name in ("mean", "logits", "mu", "logvar", "mu_q", "logvar_q", "mu_p", "logvar_p"):
        return (0.5 * g((B, Z))).astype(F32)
    if name in ("z", "eps", "dz"):
        return g((K, B, Z)).astype(F32)
    if name == "off":            # strictly-lower entries of a Cholesky factor, (B, Z(Z-1)/2)
        return (0.3 * g((B, Z * (Z - 1) // 2))).astype(F32)
    if name in ("cov_q", "cov_p"):
        a = g((Z, Z))
        return (a @ a.T / Z + np.eye(Z)).astype(F32)
    return {"c": 0.7, "rng": np.random.default_rng(0), "k": K, "batch": B, "z_dim": Z,
            "dtype": F32, "d_in": D, "d_out": 3, "sizes": (D, 5, 3),
            "activation": "tanh", "n": 5}.get(name)


def _call(fn, rng, **given):
    """Call ``fn`` with every required parameter (and ``dtype``) built from its name."""
    kwargs = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in given:
            kwargs[p.name] = given[p.name]
        elif p.default is inspect.Parameter.empty or p.name == "dtype":
            v = _value(p.name, rng)
            assert v is not None, f"{fn.__qualname__}: no float32 value for parameter {p.name!r}"
            kwargs[p.name] = v
    return fn(**kwargs)


def _exercise(obj, rng, where):
    """Run an object's forward/backward and its likelihood methods; check dtypes."""
    n = 0
    if hasattr(obj, "forward"):
        y = obj.forward(_value("x", rng))
        n += _assert_dtype(y, f"{where}.forward")
        dx = obj.backward(rng.standard_normal(y.shape).astype(F32))
        n += _assert_dtype(dx, f"{where}.backward")
        for attr in ("params", "grads"):
            if hasattr(obj, attr):
                n += _assert_dtype(getattr(obj, attr)(), f"{where}.{attr}()")
    for meth in ("log_prob", "grad", "mean"):
        if hasattr(obj, meth):
            n += _assert_dtype(_call(getattr(obj, meth), rng), f"{where}.{meth}")
    assert n, f"{where}: nothing was checked"
    return n


# ------------------------------------------------------------ core: layers ... reparam
#: factories take a registry name; every registered name is exercised
FACTORIES = {
    "make_activation": lambda: [layers.make_activation(n) for n in layers.ACTIVATIONS],
    "make_likelihood": lambda: [likelihoods.make_likelihood(n, 0.7) for n in likelihoods.LIKELIHOODS],
}


def _core_names():
    for mod in (layers, reparam, kl, likelihoods):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj):          # constants (ACTIVATIONS, LIKELIHOODS) hold no arrays
                yield pytest.param(mod, name, id=f"{mod.__name__.split('.')[-1]}.{name}")


@pytest.mark.parametrize("mod, name", list(_core_names()))
def test_core_public_function_stays_float32(mod, name):
    rng = np.random.default_rng(0)
    obj = getattr(mod, name)
    where = f"{mod.__name__}.{name}"
    if name in FACTORIES:
        for made in FACTORIES[name]():
            _exercise(made, rng, f"{where}() -> {type(made).__name__}")
    elif inspect.isclass(obj):
        _exercise(_call(obj, rng), rng, where)
    else:
        assert _assert_dtype(_call(obj, rng), where), f"{where} returned no float array"


def test_fixed_variance_gaussian_stays_float32_whatever_the_type_of_c():
    # the reported defect: np.log(c) is a NumPy float64 scalar, which NumPy 2 lets promote
    x = np.full((2, 5), 0.25, F32)
    for c in (0.5, np.float64(0.5), np.float32(0.5), 1):
        assert likelihoods.gaussian_log_prob(x, x * 0, c).dtype == F32, type(c)
        assert likelihoods.gaussian_log_prob_grad(x, x * 0, c).dtype == F32, type(c)
    # and the value is still the float64 value, to float32 precision
    lp64 = likelihoods.gaussian_log_prob(x.astype(np.float64), 0.0 * x.astype(np.float64), 0.5)
    expected = -0.5 * np.sum(x.astype(np.float64) ** 2, axis=1) / 0.5 - 2.5 * np.log(2 * np.pi * 0.5)
    np.testing.assert_allclose(lp64, expected, rtol=1e-12)
    np.testing.assert_allclose(likelihoods.gaussian_log_prob(x, x * 0, 0.5), expected, rtol=1e-6)


# ----------------------------------------------------------------------- core: the model
def _model_calls(vae, rng):
    """(method name, arguments) for every public method of the model; new ones must be added."""
    x = _value("x", rng)
    calls = {
        "encode": (x,), "decode": (_value("z", rng),), "decode_mean": (_value("z", rng),),
        "reconstruct": (x,), "sample": (5,), "log_px_given_z": (x, _value("z", rng)),
        "loss": (x,), "loss_and_grads": (x,), "copy": (), "astype": (F32,),
        "state_dict": (), "load_state_dict": (vae.state_dict(),),
        "from_config": (vae.config,), "forward": (x,), "backward": (),
        "encode_full": (x,), "log_weights": (x, _value("eps", rng)),
    }
    if not hasattr(vae, "encode_full"):       # the family's (numpyvae/family.py)
        del calls["encode_full"]
    return calls


@pytest.mark.parametrize("model", [VAE, nv.FamilyVAE])
@pytest.mark.parametrize("likelihood", nv.likelihoods.LIKELIHOODS)
@pytest.mark.parametrize("kl_mode", ["closed", "mc"])
def test_vae_every_public_method_stays_float32(likelihood, kl_mode, model):
    rng = np.random.default_rng(1)
    vae = model(D, Z, hidden=(5,), likelihood=likelihood, activation="tanh", c=0.7, seed=0,
              dtype=F32)
    x = _value("x", rng)
    # forward -> backward first: every gradient, dmu and dlogvar
    t = vae.forward(x, k=K, kl=kl_mode)
    _assert_dtype(t, "VAE.forward")
    vae.backward()
    _assert_dtype((vae.grads, vae.flat_grads, vae.dmu, vae.dlogvar), "VAE.backward")
    eps = _value("eps", rng)
    _assert_dtype(vae.forward(x, eps=eps.astype(np.float64), kl=kl_mode), "VAE.forward(eps f64)")
    _assert_dtype(vae.log_px_given_z(x, _value("z", rng), grad=True), "VAE.log_px_given_z(grad)")
    # VAE's own methods and those it inherits (copy, astype, state_dict, load_state_dict)
    members = {n: v for klass in reversed(model.__mro__[:-1]) for n, v in vars(klass).items()}
    public = {n for n, v in members.items() if not n.startswith("_")
              and (callable(v) or isinstance(v, (classmethod, property)))} - {"config", "needs_labels"}
    calls = _model_calls(vae, rng)
    assert public == set(calls), f"give these VAE methods a float32 call: {public ^ set(calls)}"
    for name, args in calls.items():
        out = getattr(vae, name)(*args)
        if isinstance(out, VAE):
            out = (out.flat_params, out.params)
        _assert_dtype(out, f"VAE.{name}")
        _assert_dtype((vae.flat_params, vae.flat_grads), f"VAE parameters after {name}")


# --------------------------------------------------------------------- core: gradcheck
#: numerical_grad, check_function, check_layer, directional_check: central differences with
#: h = 1e-5 are meaningless in float32 (eps_mach ~ 1e-7, note 06), so they refuse float32
#: arrays with a clear TypeError instead of returning noise. check_model takes a float32 VAE:
#: it checks a float64 copy and leaves the float32 model as it was.
def test_gradcheck_refuses_float32_arrays_and_checks_a_float32_model_in_float64():
    x32 = np.linspace(-1, 1, 6, dtype=F32)
    with pytest.raises(TypeError, match="float64"):
        gradcheck.numerical_grad(lambda: float(np.sum(x32 ** 2)), x32)
    with pytest.raises(TypeError, match="float64"):
        gradcheck.check_function(lambda: float(np.sum(x32 ** 2)), 2 * x32, x32)
    lin = layers.Linear(3, 2, np.random.default_rng(0), dtype=F32)
    with pytest.raises(TypeError, match="float64"):
        gradcheck.check_layer(lin, np.ones((2, 3)))
    with pytest.raises(TypeError, match="float64"):
        gradcheck.directional_check(lambda: float(np.sum(x32 ** 2)), x32, 2 * x32)
    vae = VAE(D, Z, hidden=(5,), activation="tanh", seed=0, dtype=F32)
    before = vae.flat_params.copy()
    rep = gradcheck.check_model(vae, _value("x", np.random.default_rng(0)), per_param=3)
    assert rep.passed, str(rep)
    assert vae.flat_params.dtype == F32 and vae.flat_grads.dtype == F32
    np.testing.assert_array_equal(vae.flat_params, before)
    assert isinstance(gradcheck.rel_error(x32, x32), float)


def test_every_gradcheck_name_is_covered_above():
    covered = {"numerical_grad", "check_function", "check_layer", "directional_check",
               "check_model", "rel_error"}
    not_arrays = {"GradcheckReport": "holds Python floats (the errors), no arrays",
                  "PASS": "a constant", "H": "a constant"}
    assert set(gradcheck.__all__) == covered | set(not_arrays)


# ------------------------------------------------------------------------------ theory/
def _vae32(likelihood="bernoulli"):
    return VAE(D, Z, hidden=(5,), likelihood=likelihood, activation="tanh", seed=0, dtype=F32)


def _ae32(**kw):
    return autoencoders.Autoencoder(D, 2, hidden=(), seed=0, dtype=F32, **kw)


def _ae_run(**kw):
    rng = np.random.default_rng(0)
    ae = _ae32(**kw)
    x = _value("x", rng)
    out = [ae.forward(x, rng=np.random.default_rng(1))]
    ae.backward()
    out += [ae.params, ae.grads, ae.encode(x), ae.decode(ae.encode(x)), ae.reconstruct(x),
            ae.corrupt(x), ae.copy().flat_params]
    if kw.get("contractive"):
        out.append(ae.jacobian_penalty(x))
    return out


def _fit():
    ae = _ae32(noise_std=0.1)
    hist = autoencoders.fit(ae, _value("x", np.random.default_rng(0)), epochs=2, batch_size=2)
    assert all(isinstance(h, float) for h in hist)
    return ae.params, ae.grads


X = _value("x", np.random.default_rng(2))
F64 = np.float64
#: name -> (call, expected dtype of every float array returned, why)
THEORY = {
    # estimators
    "elbo_energy_entropy": (lambda: estimators.elbo_energy_entropy(_vae32(), X, k=K, rng=0),
                            F32, "works in the model's dtype"),
    "log_likelihood": (lambda: estimators.log_likelihood(_vae32(), X, k=3, rng=0,
                                                         return_stderr=True), F64,
                       "float64 accumulation of up to thousands of K log-weights"),
    "evaluate_bounds": (lambda: estimators.evaluate_bounds(_vae32(), X, ks=(1, 2), rng=0,
                                                           n_elbo_samples=2), None,
                        "a table of Python floats"),
    "format_table": (lambda: estimators.format_table([{"k": 1, "mean": 0.5}]), None, "a string"),
    "score_function_grad": (lambda: estimators.score_function_grad(
        lambda z: np.sum(z * z, axis=-1), _value("mu", np.random.default_rng(0)),
        _value("logvar", np.random.default_rng(0)), 4, rng=0), F64,
        "a variance study of Monte Carlo estimators, computed in float64"),
    "pathwise_grad": (lambda: estimators.pathwise_grad(
        lambda z: (np.sum(z * z, axis=-1), 2 * z), _value("mu", np.random.default_rng(0)),
        _value("logvar", np.random.default_rng(0)), 4, rng=0), F64,
        "as score_function_grad"),
    "kl_mc_error": (lambda: estimators.kl_mc_error(np.zeros(Z, F32), np.zeros(Z, F32), ns=(2,),
                                                   n_rep=3, rng=0), None, "rows of Python floats"),
    "elbo_gradient_variance": (lambda: estimators.elbo_gradient_variance(_vae32(), X, ks=(1,),
                                                                         n_rep=2, rng=0),
                               None, "rows of Python floats"),
    # linear_gaussian: exact identities checked to 1e-12 and below need float64
    "LinearGaussian": (lambda: (lambda lg: (lg.log_marginal(X), lg.posterior(X), lg.elbo(
        X, np.zeros((B, 2), F32), np.zeros((B, 2), F32))))(
        linear_gaussian.LinearGaussian(np.ones((D, 2), F32), np.zeros(D, F32), 0.5)), F64,
        "closed forms compared at rounding error (log p(x) = ELBO + KL to 1e-12)"),
    "ppca_ml": (lambda: linear_gaussian.ppca_ml(np.random.default_rng(0).random((10, D)).astype(F32),
                                                2), F64, "an eigendecomposition fit, float64"),
    "ppca_max_log_likelihood": (lambda: linear_gaussian.ppca_max_log_likelihood(
        np.random.default_rng(0).random((10, D)).astype(F32), 2), None, "a Python float"),
    # amortization
    "fit_local_posterior": (lambda: amortization.fit_local_posterior(_vae32(), X, steps=3), F64,
                            "documented float64: the per-example optimum is compared in nats"),
    "amortization_gap": (lambda: amortization.amortization_gap(_vae32(), X, steps=3, k_eval=3),
                         F64, "gaps of a few nats between two ELBOs, computed in float64"),
    # maxent: scalar densities on the real line
    "DISTRIBUTIONS": (lambda: None, None, "a tuple of names"),
    "gaussian_entropy": (lambda: maxent.gaussian_entropy(np.ones(3, F32)), F64,
                         "entropies compared to 1e-3 nats by Monte Carlo, in float64"),
    "entropies_at_variance": (lambda: maxent.entropies_at_variance(1.0, n_mc=100), None,
                              "a dict of Python floats"),
    "log_density_at_variance": (lambda: maxent.log_density_at_variance("laplace",
                                                                       np.ones(3, F32)), F64,
                                "as gaussian_entropy"),
    "sample_at_variance": (lambda: maxent.sample_at_variance("gaussian", 4, rng=0), F64,
                           "as gaussian_entropy"),
    "entropy_monte_carlo": (lambda: maxent.entropy_monte_carlo("gaussian", n=10, rng=0), None,
                            "Python floats"),
    # autoencoders
    "Autoencoder": (lambda: [_ae_run(), _ae_run(sparsity=0.1, noise_std=0.1, mask_prob=0.2),
                             _ae_run(code_activation="sigmoid", contractive=0.1)], F32,
                    "works in its dtype, like the VAE"),
    "AETerms": (lambda: _ae_run()[0], F32, "what Autoencoder.forward returns"),
    "fit": (_fit, F32, "trains in the autoencoder's dtype"),
    "pca": (lambda: autoencoders.pca(X, 2), F64, "an SVD baseline compared to 1e-10, float64"),
    "pca_reconstruct": (lambda: autoencoders.pca_reconstruct(X, *autoencoders.pca(X, 2)[:2]), F64,
                        "as pca"),
}


def test_every_public_theory_name_has_a_float32_case():
    names = {n for m in (estimators, linear_gaussian, amortization, maxent, autoencoders)
             for n in m.__all__}
    assert names == set(THEORY), (f"missing: {sorted(names - set(THEORY))}, "
                                  f"stale: {sorted(set(THEORY) - names)}")


@pytest.mark.parametrize("name", sorted(THEORY))
def test_theory_public_function_dtype(name):
    call, dtype, why = THEORY[name]
    assert why
    out = call()
    if dtype is None:      # no arrays by design
        assert not [p for p, a in _arrays(out) if np.issubdtype(a.dtype, np.floating)
                    and np.ndim(a) > 0], f"{name}: expected no float arrays ({why})"
    else:
        assert _assert_dtype(out, name, dtype), f"{name} returned no float array"


def test_log_mean_exp_keeps_float32():
    """The one log-mean-exp (numpyvae.iwae) keeps the dtype of its input."""
    out = nv.iwae.log_mean_exp(_value("z", np.random.default_rng(0)))
    assert np.asarray(out).dtype == np.float32
