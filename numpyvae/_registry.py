"""One registry of model kinds: a name -> the class that builds it from its ``config``.

Every model the package trains puts ``"model": <kind>`` in its ``config`` and registers its
class here with ``@register(kind)``. A checkpoint records the config; ``from_config`` turns it
back into a model of the right class, and the command line offers the kinds registered. A new
model therefore meets the model contract (``numpyvae/training/trainer.py``) and registers
itself, in its own module, in one line.
"""
from __future__ import annotations

__all__ = ["MODELS", "register", "from_config", "kind_of"]

#: kind -> model class (filled by ``@register`` as the model modules are imported)
MODELS: dict = {}


def register(kind: str):
    """Class decorator: ``@register("vae")`` makes ``kind`` name this class in configs."""
    def add(cls):
        if kind in MODELS and MODELS[kind] is not cls:
            raise ValueError(f"model kind {kind!r} is registered already ({MODELS[kind].__name__})")
        cls.kind = kind
        MODELS[kind] = cls
        return cls
    return add


def kind_of(cfg: dict, default: str = "vae") -> str:
    """The kind a config names (configs without the field are plain VAEs)."""
    return str(cfg.get("model", default))


def from_config(cfg: dict, default: str = "vae", cls=None):
    """A freshly initialised model of the kind ``cfg["model"]`` with the settings in ``cfg``.

    ``cls``: build this class when it is of that kind (a subclass that inherits its kind,
    such as a student's VAE, copies as itself); otherwise the registered class is built."""
    kind = kind_of(cfg, default)
    if cls is None or getattr(cls, "kind", None) != kind:
        if kind not in MODELS:
            raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(sorted(MODELS))})")
        cls = MODELS[kind]
    args = {k: v for k, v in cfg.items() if k != "model"}
    if "hidden" in args:
        args["hidden"] = tuple(args["hidden"])
    return cls(**args)
