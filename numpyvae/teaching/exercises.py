"""The exercise table and the cases each exercise is graded on.

An exercise is one function or method of numpyvae whose body the student writes.
Its cases are plain data: a JSON-able ``meta`` dict (shapes, settings, a label a
student can read) and named float64 arrays. The same cases go to the child
process that runs the submission (``sandbox.py``), to the parent that computes
finite differences of the *reference* forward (``grader.py``) and, for the visible
ones, into the student's kit for the self-check.

Adding an exercise is a few lines: an ``Exercise(...)`` entry below and, for a new
kind of object, a case builder in ``_BUILDERS``. Function exercises need no new
code: ``FunctionSpec`` says which forward is differentiated and how the student's
function is called.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Exercise", "FunctionSpec", "EXERCISES", "DEFAULT_EXERCISES", "select",
           "build_cases", "case_seed", "register", "vae_configs"]


@dataclass(frozen=True)
class FunctionSpec:
    """How a function exercise is differentiated.

    forward: the numpyvae function whose (weighted) sum is the scalar.
    args: its argument names, in order. call: the student's argument names, in
    order ("g" is the upstream gradient, the weight of the forward's output).
    wrt: the inputs the returned gradients belong to, in the order returned;
    outputs: their names in messages. consts: arguments passed as Python floats.
    """
    forward: str
    args: tuple
    call: tuple
    wrt: tuple
    outputs: tuple
    consts: tuple = ()
    weighted: bool = False


@dataclass(frozen=True)
class Exercise:
    """One exercise: what becomes a stub, how it is graded, what it is worth.

    kind: "layer", "function" or "vae". module/qualname: where the reference lives
    (``numpyvae.<module>``, "function" or "Class.method"). task: the job in words,
    without the answer. gradients: the graded gradients (partial credit is split
    over them). context: further names of the module copied in full (the forward).
    class_doc: replaces the docstring of the class holding a stubbed method when
    answers are hidden. points: default points. answer_names: names whose
    assignment in a note's code states the answer (hidden when a note has no markers).
    cases: a case builder of its own, for inputs the kind's builder does not draw well
    (e.g. a lower-triangular factor with a positive diagonal). diagnose: names the
    exercise's classic mistakes in the grader's message (the parent calls it on a wrong
    gradient, with the case's arrays; a reason starting "; it " replaces the general
    hint, any other text is added to it).
    """
    id: str
    kind: str
    module: str
    qualname: str
    task: str
    gradients: tuple
    context: tuple = ()
    class_doc: str | None = None
    points: float = 1.0
    function: FunctionSpec | None = None
    answer_names: tuple = ()
    cases: object = None     # optional (ex, rng, hidden) -> [(meta, arrays)], replacing the kind's
    diagnose: object = None  # optional (name, yours, numeric, meta, arrays) -> a reason, or ''

    @property
    def top(self) -> str:
        return self.qualname.split(".")[0]

    @property
    def method(self) -> str | None:
        parts = self.qualname.split(".")
        return parts[1] if len(parts) > 1 else None


EXERCISES: dict = {}


def register(ex: Exercise) -> Exercise:
    """Add ``ex`` to ``EXERCISES`` (ids are unique)."""
    if ex.id in EXERCISES:
        raise ValueError(f"exercise id {ex.id!r} is registered twice")
    if ex.kind not in _BUILDERS:
        raise ValueError(f"exercise kind must be one of {sorted(_BUILDERS)}, got {ex.kind!r}")
    EXERCISES[ex.id] = ex
    return ex


# --------------------------------------------------------------------------- case builders
def _rand_x01(rng, shape):
    x = rng.random(shape)
    x[..., ::2] = np.round(x[..., ::2])     # binary pixels and grey levels both
    return x


def _away_from_kinks(rng, shape):
    x = rng.standard_normal(shape)
    return x + 0.1 * np.sign(x)             # keep finite differences off the ReLU kink


def _layer_cases(ex, rng, hidden):
    linear = ex.top == "Linear"
    shapes = [(1, 1, 1), (3, 4, 4), (5, 3, 2)] if linear else [(1, 1), (3, 4), (6, 5)]
    if hidden:
        shapes = [tuple(int(v) for v in rng.integers(1, 7, size=3 if linear else 2))
                  for _ in range(2)]
    cases = []
    for s in shapes:
        arrays = {"x": _away_from_kinks(rng, s[:2])}
        meta = {"layer": ex.top, "B": s[0], "D_in": s[1], "input_grad": True}
        if linear:
            meta["D_out"] = s[2]
            arrays["W"] = rng.standard_normal((s[1], s[2])) / np.sqrt(s[1])
            arrays["b"] = rng.standard_normal(s[2])
            out = s[2]
        else:
            out = s[1]
        arrays["g"] = rng.standard_normal((s[0], out))
        meta["label"] = (f"{ex.top}(B={s[0]}, D_in={s[1]}" + (f", D_out={s[2]}" if linear else "")
                         + ")")
        cases.append((meta, arrays))
    if linear and not hidden:   # a first layer: dx is not wanted, dW and db still are
        meta, arrays = cases[1]
        meta = dict(meta, input_grad=False, label=meta["label"] + " with input_grad=False")
        cases.append((meta, {k: v.copy() for k, v in arrays.items()}))
    if linear and hidden:       # MNIST's first layer: too many weights to difference one by one
        B, D_in, D_out = LARGE_LINEAR
        meta = {"layer": "Linear", "B": B, "D_in": D_in, "D_out": D_out, "input_grad": True,
                "large": True, "label": f"Linear(B={B}, D_in={D_in}, D_out={D_out}), large"}
        cases.append((meta, {"x": rng.standard_normal((B, D_in)),
                             "W": rng.standard_normal((D_in, D_out)) / np.sqrt(D_in),
                             "b": rng.standard_normal(D_out),
                             "g": rng.standard_normal((B, D_out))}))
    return cases


def _function_shapes(ex, rng, hidden):
    """(shapes by argument, label) for a function exercise."""
    spec = ex.function
    if ex.id == "reparameterize_backward":
        dims = [(1, 1, 1), (1, 3, 2), (3, 4, 5)]
        if hidden:
            dims = [tuple(int(v) for v in rng.integers(1, 6, size=3)) for _ in range(2)]
        return [({"mu": (B, Z), "logvar": (B, Z), "eps": (K, B, Z), "g": (K, B, Z)},
                 f"K={K}, B={B}, Z={Z}", {"k": K, "B": B}) for K, B, Z in dims]
    if spec.args[0] == "x":      # likelihoods: x (B, D) against an output (B, D) or (K, B, D)
        dims = [(None, 1, 1), (None, 3, 4), (3, 2, 5)]
        if hidden:
            dims = [(int(rng.integers(1, 4)) if j else None,) + tuple(int(v) for v in
                                                                   rng.integers(1, 6, size=2))
                    for j in range(2)]
        out = []
        for K, B, D in dims:
            o = (B, D) if K is None else (K, B, D)
            shapes = {a: o for a in spec.args if a != "x" and a not in spec.consts}
            shapes["x"] = (B, D)
            out.append((shapes, f"x {(B, D)} against {spec.args[1]} {o}", {"B": B, "k": K}))
        return out
    dims = [(1, 1), (3, 2), (4, 5)]
    if hidden:
        dims = [tuple(int(v) for v in rng.integers(1, 7, size=2)) for _ in range(2)]
    args = [a for a in spec.args if a not in spec.consts]
    return [({a: d for a in args}, f"{', '.join(args)} of shape {d}", {"B": d[0]})
            for d in dims]


def _function_cases(ex, rng, hidden):
    spec = ex.function
    cases = []
    for shapes, label, extra in _function_shapes(ex, rng, hidden):
        arrays = {}
        for name, shape in shapes.items():
            if name == "x":
                arrays[name] = (_rand_x01(rng, shape) if "bernoulli" in ex.id
                                else rng.standard_normal(shape))
            elif name == "logits":
                arrays[name] = 2 * rng.standard_normal(shape)
            elif name == "logvar" and ex.id == "gaussian_learned_log_prob_grad":
                arrays[name] = 0.5 * rng.standard_normal(shape)
            else:
                arrays[name] = rng.standard_normal(shape)
        for c in spec.consts:
            arrays[c] = np.array(float(rng.choice([0.3, 1.0, 2.5])))
            label += f", {c}={float(arrays[c]):g}"
        cases.append((dict(extra, label=label), arrays))
    return cases


_VAE_VISIBLE = [
    dict(hidden=[5], likelihood="bernoulli", activation="relu", c=1.0, k=1, beta=1.0,
         kl="closed"),
    dict(hidden=[], likelihood="gaussian", activation="tanh", c=0.5, k=2, beta=0.7, kl="closed"),
    dict(hidden=[4, 3], likelihood="gaussian_learned", activation="softplus", c=1.0, k=2,
         beta=1.0, kl="mc"),
]
# what the instructor may fix per VAE case (the manifest's "vae_settings"): the functions a
# case runs through. Hidden cases keep them and vary only shapes and values, so one mistake
# costs every student the same.
VAE_SETTINGS = ("likelihood", "activation")
LARGE_LINEAR = (16, 784, 400)          # (B, D_in, D_out): MNIST's first layer
LARGE_VAE = (16, 784, 400, 20)         # (B, x_dim, hidden, z_dim): the 784-400-20 VAE


def vae_configs(settings=None) -> list:
    """The VAE cases' configurations: the defaults, with each entry of ``settings`` (a list of
    {"likelihood": ..., "activation": ...}, one per case) replacing those two choices."""
    configs = [dict(c) for c in _VAE_VISIBLE]
    if settings is None:
        return configs
    if not isinstance(settings, (list, tuple)) or not 1 <= len(settings) <= len(configs) \
            or not all(isinstance(s, dict) for s in settings):
        raise ValueError(f"vae_settings must be a list of 1 to {len(configs)} dicts with keys "
                         f"{', '.join(VAE_SETTINGS)}, got {settings!r}")
    from ..likelihoods import LIKELIHOODS
    from ..layers import ACTIVATIONS
    allowed = {"likelihood": tuple(LIKELIHOODS), "activation": tuple(ACTIVATIONS)}
    out = []
    for cfg, s in zip(configs, settings):
        for k, v in s.items():
            if k not in VAE_SETTINGS or v not in allowed[k]:
                raise ValueError(f"vae_settings: {k}={v!r} is not allowed; expected "
                                 f"likelihood in {allowed['likelihood']} and activation in "
                                 f"{allowed['activation']}")
        out.append(dict(cfg, **s))
    return out


def _vae_label(m):
    s = (f"hidden={tuple(m['hidden'])}, likelihood={m['likelihood']}, "
         f"activation={m['activation']}, K={m['k']}, beta={m['beta']:g}, kl={m['kl']}")
    return s + (", q=(mu, logvar) given" if m.get("q") else "") + (
        f", x_dim={m['x_dim']}, z_dim={m['z_dim']}, large" if m.get("large") else "")


def _vae_cases(ex, rng, hidden, settings=None):
    """The visible configurations; hidden: the same configurations (likelihood, activation, KL
    mode, K, beta, c, depth) with other sizes and values, and the 784-400-20 VAE."""
    configs = vae_configs(settings)
    dims = [(6, 3, 4)] * len(configs)                 # (x_dim, z_dim, B)
    if hidden:
        for cfg in configs:
            cfg["hidden"] = [int(h) for h in rng.integers(2, 6, size=len(cfg["hidden"]))]
        dims = [tuple(int(v) for v in rng.integers(2, 7, size=3)) for _ in configs]
        B, x_dim, h, z_dim = LARGE_VAE
        configs.append(dict(configs[0], hidden=[h] * len(configs[0]["hidden"]), k=1,
                            large=True))
        dims.append((x_dim, z_dim, B))
    from ..model import VAE     # only for a parameter layout and a fair initialisation
    cases = []
    for i, (cfg, (x_dim, z_dim, B)) in enumerate(zip(configs, dims)):
        meta = dict(cfg, x_dim=x_dim, z_dim=z_dim, q=False, seed=int(rng.integers(2**31)))
        arrays = {"x": (_rand_x01(rng, (B, x_dim)) if cfg["likelihood"] == "bernoulli"
                        else rng.standard_normal((B, x_dim))),
                  "eps": rng.standard_normal((cfg["k"], B, z_dim))}
        ref = VAE(x_dim, z_dim, hidden=tuple(cfg["hidden"]), likelihood=cfg["likelihood"],
                  activation=cfg["activation"], c=cfg["c"], seed=meta["seed"])
        for name, p in ref.params.items():
            # nonzero biases, so a gradient that forgets a bias term shows up
            arrays["p." + name] = p + (0.1 * rng.standard_normal(p.shape) if p.ndim == 1 else 0)
        meta["label"] = _vae_label(meta)
        cases.append((meta, arrays))
        if i == 0:      # the q=(mu, logvar) override: a decoder-only objective
            qm = dict(meta, q=True)
            qm["label"] = _vae_label(qm)
            qa = dict(arrays, q_mu=rng.standard_normal((B, z_dim)),
                      q_logvar=0.5 * rng.standard_normal((B, z_dim)))
            cases.append((qm, qa))
    return cases


_BUILDERS = {"layer": _layer_cases, "function": _function_cases, "vae": _vae_cases}


def case_seed(ex_id: str, seed: int = 0, student_id: str | None = None, hidden=False) -> list:
    """The entropy for one exercise's cases: the manifest seed, the exercise, the student."""
    parts = [int(seed), zlib.crc32(ex_id.encode()), int(bool(hidden))]
    if student_id:
        parts.append(zlib.crc32(str(student_id).encode()))
    return parts


def build_cases(ex: Exercise, seed: int = 0, student_id: str | None = None,
                hidden: bool = False, vae_settings=None) -> list:
    """[(meta, arrays)] for ``ex``: the visible cases, or the hidden ones (other shapes and
    values, never other functions). vae_settings: the VAE cases' likelihood and activation
    (``vae_configs``). A case whose meta has "large" is too big to difference coordinate by
    coordinate within the time limit: the grader compares it with the reference backward."""
    rng = np.random.default_rng(case_seed(ex.id, seed, student_id, hidden))
    if ex.kind == "vae" and ex.cases is None:
        cases = _vae_cases(ex, rng, hidden, vae_settings)
    else:
        cases = (ex.cases or _BUILDERS[ex.kind])(ex, rng, hidden)
    for meta, _ in cases:
        meta["secret"] = bool(hidden)     # a hidden case (VAE metas use "hidden" for layers)
    return cases


# --------------------------------------------------------------------------- the table
def _act(name, what, grad_hint):
    return Exercise(
        f"{name.lower()}_backward", "layer", "layers", f"{name}.backward",
        f"Given dy = dL/dy, the gradient of the loss with respect to this layer's output, "
        f"return dL/dx with the shape of x for y = {what}. Use what forward() stored.",
        gradients=("dx",), class_doc=f"Element-wise activation y = {what}.",
        answer_names=("dx",) + grad_hint)


for _ex in [
    Exercise("linear_backward", "layer", "layers", "Linear.backward",
             "Given dy = dL/dy (B, D_out) for y = x @ W + b, write dL/dW into self.dW and "
             "dL/db into self.db (overwrite the arrays in place, e.g. self.dW[...] = ..., "
             "never add to them) and return dL/dx (B, D_in), or None when self.input_grad "
             "is False.",
             gradients=("dx", "dW", "db"), points=2.0, answer_names=("dx", "dW", "db")),
    _act("ReLU", "max(x, 0)", ()),
    _act("Tanh", "tanh(x)", ()),
    _act("Sigmoid", "1 / (1 + exp(-x))", ()),
    _act("Softplus", "log(1 + exp(x))", ()),
    Exercise("reparameterize_backward", "function", "reparam", "reparameterize_backward",
             "Given dz = dL/dz (K, B, Z) for z = reparameterize(mu, logvar, eps), return "
             "(dL/dmu, dL/dlogvar), each (B, Z), with eps held fixed.",
             gradients=("dmu", "dlogvar"), context=("reparameterize",),
             function=FunctionSpec("reparameterize", ("mu", "logvar", "eps"),
                                   ("g", "logvar", "eps"), ("mu", "logvar"), ("dmu", "dlogvar"),
                                   weighted=True),
             answer_names=("dmu", "dlogvar", "dv", "dsigma")),
    Exercise("kl_normal_std_grad", "function", "kl", "kl_normal_std_grad",
             "Return (dKL/dmu, dKL/dlogvar) for KL = kl_normal_std(mu, logvar), each with the "
             "shape of mu: the partial derivatives of each example's KL.",
             gradients=("dmu", "dlogvar"), context=("kl_normal_std",),
             function=FunctionSpec("kl_normal_std", ("mu", "logvar"), ("mu", "logvar"),
                                   ("mu", "logvar"), ("dmu", "dlogvar")),
             answer_names=("dmu", "dlogvar", "dkl_dmu", "dkl_dlogvar")),
    Exercise("bernoulli_log_prob_grad", "function", "likelihoods", "bernoulli_log_prob_grad",
             "Return the derivative of bernoulli_log_prob(x, logits) with respect to every "
             "logit, with the shape of logits (x broadcasts against logits).",
             gradients=("dlogits",), context=("bernoulli_log_prob",),
             function=FunctionSpec("bernoulli_log_prob", ("x", "logits"), ("x", "logits"),
                                   ("logits",), ("dlogits",)),
             answer_names=("dlogits", "dl", "grad")),
    Exercise("gaussian_log_prob_grad", "function", "likelihoods", "gaussian_log_prob_grad",
             "Return the derivative of gaussian_log_prob(x, mean, c) with respect to every "
             "entry of mean, with the shape of mean (c is a fixed positive number).",
             gradients=("dmean",), context=("gaussian_log_prob",),
             function=FunctionSpec("gaussian_log_prob", ("x", "mean", "c"), ("x", "mean", "c"),
                                   ("mean",), ("dmean",), consts=("c",)),
             answer_names=("dmean", "dm", "grad")),
    Exercise("gaussian_learned_log_prob_grad", "function", "likelihoods",
             "gaussian_learned_log_prob_grad",
             "Return (d/dmean, d/dlogvar) of gaussian_learned_log_prob(x, mean, logvar), each "
             "with the shape of mean.",
             gradients=("dmean", "dlogvar"), context=("gaussian_learned_log_prob",),
             function=FunctionSpec("gaussian_learned_log_prob", ("x", "mean", "logvar"),
                                   ("x", "mean", "logvar"), ("mean", "logvar"),
                                   ("dmean", "dlogvar")),
             answer_names=("dmean", "dlogvar", "dm", "dv")),
    Exercise("vae_backward", "vae", "model", "VAE.backward",
             "Fill self.grads with the gradient of the loss of the last forward() (write into "
             "the live arrays, never add) and set self.dmu, self.dlogvar: likelihood gradient "
             "-> decoder -> z -> (mu, logvar) along the eps-path, plus the KL term, -> encoder. "
             "forward() keeps what you need in self._cache; both kl='closed' and kl='mc' and "
             "the q=(mu, logvar) override must work.",
             gradients=("encoder", "decoder"), points=4.0,
             answer_names=("douts", "dz", "dmu", "dlogvar", "scale")),
]:
    register(_ex)


# --------------------------------------------------------------------------- the model family
def _close(a, b):
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and \
        np.max(np.abs(a - b)) <= 1e-6 * max(np.max(np.abs(b)) if b.size else 0.0, 1e-12)


def _iwae_cases(ex, rng, hidden):
    """log_w (K, B) with weights far from uniform; one case near -750 nats, where exp underflows."""
    dims = [(1, 2, 0.0), (3, 2, 0.0), (5, 4, 0.0), (4, 3, -750.0)]
    if hidden:
        dims = [(int(rng.integers(2, 7)), int(rng.integers(1, 6)), off) for off in (0.0, -600.0)]
    cases = []
    for K, B, offset in dims:
        log_w = offset + 2.0 * rng.standard_normal((K, B))
        label = f"K={K}, B={B}" + (f", log w near {offset:g} nats" if offset else "")
        cases.append(({"k": K, "B": B, "offset": offset, "label": label},
                      {"log_w": log_w, "g": rng.standard_normal(B)}))
    return cases


def _iwae_diagnose(name, a, n, meta, arrays):
    K = arrays["log_w"].shape[0]
    if K > 1 and _close(a, np.broadcast_to(arrays["g"] / K, n.shape)):
        return ("; it weights every sample by the uniform 1/K (the ELBO's average); the "
                "IWAE weights sample k by the softmax of log w over k")
    if meta.get("offset") and not np.all(np.isfinite(a)):
        return ("; it contains NaN or inf: exp(log w) underflows to 0 near "
                f"{meta['offset']:g} nats; subtract the largest log w first")
    return ""


def _cholesky_cases(ex, rng, hidden):
    dims = [(1, 1, 2), (2, 3, 3), (3, 2, 4)]
    if hidden:
        dims = [(int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 6)))
                for _ in range(2)]
    cases = []
    for K, B, Z in dims:
        arrays = {"mu": rng.standard_normal((B, Z)), "logvar": 0.7 * rng.standard_normal((B, Z)),
                  "off": rng.standard_normal((B, Z * (Z - 1) // 2)),
                  "eps": rng.standard_normal((K, B, Z)), "g": rng.standard_normal((K, B, Z))}
        cases.append(({"k": K, "B": B, "label": f"K={K}, B={B}, Z={Z}"}, arrays))
    return cases


def _cholesky_diagnose(name, a, n, meta, arrays):
    if name == "dlogvar" and a.shape == n.shape and \
            _close(a * np.exp(0.5 * arrays["logvar"]), n):
        return ("; it lacks the factor L_ii = exp(logvar_i / 2): the diagonal of L is "
                "exp(logvar / 2), and the chain rule through that exp gives dL_ii/dlogvar_i "
                "= L_ii / 2")
    if name == "doff" and a.shape == n.shape and np.all(np.isfinite(a)):
        Z = arrays["mu"].shape[1]
        rows, cols = np.tril_indices(Z, -1)
        G = np.einsum("kbi,kbj->bij", arrays["g"], arrays["eps"])
        if _close(a, G[:, cols, rows]):
            return "; it reads G = sum_k dz_k eps_k^T above the diagonal (transposed)"
    return ""


def _st_cases(ex, rng, hidden):
    dims = [(1, 1, 1, 2), (2, 2, 2, 3), (3, 2, 3, 5)]       # (B, M, d, K)
    if hidden:
        dims = [(int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                 int(rng.integers(2, 6))) for _ in range(2)]
    cases = []
    for B, M, d, K in dims:
        z_e, codebook = rng.standard_normal((B, M, d)), rng.standard_normal((K, d))
        beta = float(rng.choice([0.25, 1.0, 2.0]))
        arrays = {"dz_q": rng.standard_normal((B, M, d)), "z_e": z_e, "codebook": codebook,
                  "sg_z_e": z_e.copy(), "sg_codebook": codebook.copy(), "beta": np.array(beta)}
        cases.append(({"B": B, "label": f"B={B}, M={M}, d={d}, K={K}, beta={beta:g}"}, arrays))
    return cases


_ST_NOTE = ("; the straight-through part is graded against the surrogate's definition "
            "z_st = z_e + sg[z_q - z_e] (vq_surrogate_loss), not the argmin's true derivative "
            "(zero)")


def _st_diagnose(name, a, n, meta, arrays):
    if a.shape != n.shape or not np.all(np.isfinite(a)):
        return ""
    dz_q = arrays["dz_q"]
    if name == "dz_e":
        if _close(a + dz_q, n):
            return ("; it lacks the straight-through copy: dL/dz_q goes onto z_e (the "
                    "encoder), as if z_q = z_e" + _ST_NOTE)
        return _ST_NOTE
    cb = arrays["codebook"]
    d2 = (np.sum(arrays["z_e"] ** 2, -1)[..., None] - 2 * arrays["z_e"] @ cb.T
          + np.sum(cb * cb, -1))
    copied = np.zeros_like(cb)
    np.add.at(copied, np.argmin(d2, -1).reshape(-1), dz_q.reshape(-1, cb.shape[1]))
    if _close(a - copied, n):
        return ("; it holds the copied decoder gradient dL/dz_q: the straight-through copy "
                "goes to the encoder's z_e, the codebook gets only its own term "
                "||sg[z_e] - e||^2")
    return ""


for _ex in [
    Exercise("iwae_backward", "function", "iwae", "iwae_bound_backward",
             "Given dbound = dL/dL_K (B,), the upstream gradient of each example's bound "
             "L_K = iwae_bound(log_w), return dL/dlog_w with the shape of log_w (K, B). It must "
             "stay finite when every log w is near -1000 nats, as on real images.",
             gradients=("dlog_w",), context=("iwae_bound",),
             function=FunctionSpec("iwae_bound", ("log_w",), ("g", "log_w"), ("log_w",),
                                   ("dlog_w",), weighted=True),
             answer_names=("w_tilde",), cases=_iwae_cases, diagnose=_iwae_diagnose),
    Exercise("cholesky_reparameterize_backward", "function", "reparam",
             "reparameterize_full_backward",
             "Given dz = dL/dz (K, B, Z) for z = reparameterize_full(mu, logvar, off, eps) = "
             "mu + L eps, return (dL/dmu, dL/dlogvar, dL/doff) with the shapes of mu, logvar "
             "and off, eps held fixed. L's diagonal is exp(logvar / 2); off fills its strictly "
             "lower triangle in np.tril_indices(Z, -1) order.",
             gradients=("dmu", "dlogvar", "doff"), context=("reparameterize_full", "tril_factor"),
             points=2.0,
             function=FunctionSpec("reparameterize_full", ("mu", "logvar", "off", "eps"),
                                   ("g", "logvar", "off", "eps"), ("mu", "logvar", "off"),
                                   ("dmu", "dlogvar", "doff"), weighted=True),
             answer_names=("dmu", "dlogvar", "doff", "G"), cases=_cholesky_cases,
             diagnose=_cholesky_diagnose),
    Exercise("straight_through_backward", "function", "vqvae", "quantize_backward",
             "The VQ-VAE quantizer's backward. Given dz_q = dL/dz_q (B, M, d), the decoder's "
             "gradient at the chosen codebook entries z_q = nearest_codes(z_e, codebook)[1], "
             "return (dz_e, dcodebook) with the shapes of z_e and codebook: the exact gradient "
             "of vq_surrogate_loss, where sg[a] is a copy of a the derivative does not see. "
             "The straight-through copy is a surrogate: it is graded against that definition, "
             "not against the argmin's true derivative (which is zero).",
             gradients=("dz_e", "dcodebook"), context=("vq_surrogate_loss", "nearest_codes"),
             points=2.0,
             function=FunctionSpec("vq_surrogate_loss",
                                   ("dz_q", "z_e", "codebook", "sg_z_e", "sg_codebook", "beta"),
                                   ("dz_q", "z_e", "codebook", "beta"), ("z_e", "codebook"),
                                   ("dz_e", "dcodebook"), consts=("beta",)),
             answer_names=("dz_e", "dcodebook"), cases=_st_cases, diagnose=_st_diagnose),
]:
    register(_ex)

DEFAULT_EXERCISES = tuple(EXERCISES)

# what the VAE exercise's student class needs from the other modules (copied in full)
VAE_CONTEXT = {
    "layers": ("Linear", "MLP", "make_activation", "ACTIVATIONS"),
    "reparam": ("reparameterize", "reparameterize_backward", "sample_eps"),
    "kl": ("kl_normal_std", "kl_normal_std_grad", "kl_monte_carlo"),
    "likelihoods": ("make_likelihood", "LIKELIHOODS"),
}


# other names instructors use for an exercise
ALIASES = {"kl_backward": "kl_normal_std_grad", "kl_grad": "kl_normal_std_grad",
           "reparam_backward": "reparameterize_backward"}


def select(exercises) -> list:
    """Exercises by id (a list or a comma-separated string; None = all), checked, in order.

    Aliases (``ALIASES``, e.g. kl_backward) name the same exercise.
    """
    if exercises is None:
        return [EXERCISES[i] for i in DEFAULT_EXERCISES]
    if isinstance(exercises, str):
        exercises = [e for e in exercises.split(",") if e.strip()]
    out = []
    for e in exercises:
        e = str(e).strip()
        e = ALIASES.get(e, e)
        if e not in EXERCISES:
            raise ValueError(f"exercises: unknown exercise {e!r}; expected names from "
                             f"{', '.join(EXERCISES)}")
        if EXERCISES[e] not in out:
            out.append(EXERCISES[e])
    if not out:
        raise ValueError("exercises must name at least one exercise")
    return out


# --------------------------------------------------------------------------- convolutions
def _conv_cases(ex, rng, hidden):
    """Visible: small shapes, one of them strided and padded. Hidden: random shapes whose windows
    overlap (stride < k) with padding, one with disjoint windows, and one large case that a
    coordinate-by-coordinate numerical gradient cannot finish in the time limit (graded against
    the reference backward, which the tests check by finite differences)."""
    from ..conv_layers import conv_output_size, conv_transpose_output_size
    transpose = ex.id == "conv_transpose2d_backward"
    # (B, C_in, C_out, H, W, k, stride, padding)
    dims = [(1, 1, 1, 3, 3, 2, 1, 0), (2, 2, 3, 5, 4, 3, 1, 1), (2, 3, 2, 7, 6, 3, 2, 1)]
    if hidden:
        k = int(rng.integers(3, 6))
        s = int(rng.integers(2, k))                               # 2 <= s < k: overlapping, strided
        dims = [(int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                 int(rng.integers(k, 10)), int(rng.integers(k, 10)), k, s, int(rng.integers(1, 3))),
                (2, int(rng.integers(1, 4)), int(rng.integers(1, 4)), 7, 9, 2, 3, 0),   # disjoint
                (8, 16, 32, 32, 32, 3, 1, 1) if not transpose else (8, 32, 16, 16, 16, 4, 2, 1)]
    cases = []
    for i, (B, ci, co, H, W, k, s, p) in enumerate(dims):
        if transpose:
            op = s - 1 if s > 1 and i % 2 == 0 else 0
            p = min(p, ((H - 1) * s + k + op - 1) // 2)             # padding may not crop it all
            oh = conv_transpose_output_size(H, k, s, p, op)
            ow = conv_transpose_output_size(W, k, s, p, op)
            w_shape = (ci, co, k, k)
        else:
            oh, ow, w_shape = conv_output_size(H, k, s, p), conv_output_size(W, k, s, p), (co, ci, k, k)
        arrays = {"x": rng.standard_normal((B, ci, H, W)),
                  "W": rng.standard_normal(w_shape) / np.sqrt(ci * k * k),
                  "b": rng.standard_normal(co), "g": rng.standard_normal((B, co, oh, ow)),
                  "stride": np.array(float(s)), "padding": np.array(float(p))}
        label = f"x {(B, ci, H, W)}, kernel {k}, stride {s}, padding {p}"
        if transpose:
            arrays["output_padding"] = np.array(float(op))
            label += f", output_padding {op}"
        meta = {"B": B, "label": label + (", windows overlap" if s < k else "")}
        if hidden and i == 2:
            meta.update(large=True, label=label + ", large")
        cases.append((meta, arrays))
    return cases


for _ex in [
    Exercise("conv2d_backward", "function", "conv_layers", "conv2d_backward",
             "Given dy = dL/dy (B, F, H', W') for y = conv2d(x, W, b, stride, padding), return "
             "(dx, dW, db) with the shapes of x (B, C, H, W), W (F, C, k, k) and b (F,). Where "
             "windows overlap (stride < k) a pixel belongs to several windows; the padding is "
             "not an input. Hidden cases overlap windows, use stride and padding, and one is too "
             "large for a numerical gradient.",
             gradients=("dx", "dW", "db"), context=("conv2d",), points=3.0,
             function=FunctionSpec("conv2d", ("x", "W", "b", "stride", "padding"),
                                   ("g", "x", "W", "stride", "padding"), ("x", "W", "b"),
                                   ("dx", "dW", "db"), consts=("stride", "padding"), weighted=True),
             answer_names=("dx", "dW", "db", "dcols", "dxp"), cases=_conv_cases),
    Exercise("conv_transpose2d_backward", "function", "conv_layers", "conv_transpose2d_backward",
             "Given dy = dL/dy (B, C_out, H', W') for y = conv_transpose2d(x, W, b, stride, "
             "padding, output_padding), return (dx, dW, db) with the shapes of x (B, C_in, H, W), "
             "W (C_in, C_out, k, k) and b (C_out,). Hidden cases overlap windows, use stride, "
             "padding and output_padding, and one is too large for a numerical gradient.",
             gradients=("dx", "dW", "db"), context=("conv_transpose2d",), points=3.0,
             function=FunctionSpec("conv_transpose2d",
                                   ("x", "W", "b", "stride", "padding", "output_padding"),
                                   ("g", "x", "W", "stride", "padding", "output_padding"),
                                   ("x", "W", "b"), ("dx", "dW", "db"),
                                   consts=("stride", "padding", "output_padding"), weighted=True),
             answer_names=("dx", "dW", "db", "cols"), cases=_conv_cases),
]:
    register(_ex)
DEFAULT_EXERCISES += ("conv2d_backward", "conv_transpose2d_backward")
