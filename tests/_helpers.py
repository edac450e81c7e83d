"""Shared helpers for the core test files (owned by the core-tests helper)."""
from __future__ import annotations

import re
import struct

import numpy as np
from hypothesis import assume, settings
from hypothesis import strategies as st

import numpyvae as nv

PASS = nv.gradcheck.PASS
KINK = 1e-3  # keep every ReLU/LeakyReLU pre-activation at least this far from 0

# modest example counts keep the whole core suite well under a minute and a half
FAST = settings(max_examples=15, deadline=None)
FEW = settings(max_examples=10, deadline=None)

seeds = st.integers(0, 2**32 - 1)
batch = st.integers(1, 8)
dims = st.integers(1, 16)
ksamp = st.integers(1, 4)

ACTS = ("relu", "leaky_relu", "tanh", "sigmoid", "softplus", "identity")
KINKED = ("relu", "leaky_relu")


def away_from_zero(a, margin=1e-2):
    """Shift every entry away from 0 by ``margin`` (keeps the sign), avoiding kinks."""
    return np.where(a >= 0, a + margin, a - margin)


def randomize_biases(vae, rng, scale=0.5):
    """Give every bias a nonzero random value so db and the kinks are exercised."""
    for name, p in vae.params.items():
        if name.endswith(".b"):
            p[...] = scale * rng.standard_normal(p.shape)


def assume_no_kinks(linears, margin=KINK):
    """After a forward: reject the example if any Linear feeding a kinked activation
    has a pre-activation within ``margin`` of 0 (finite differences straddle kinks)."""
    for lin in linears:
        pre = lin.x @ lin.W + lin.b
        assume(np.min(np.abs(pre)) > margin)


def model_linears(vae):
    """The Linears whose outputs go through the activation (the MLP trunks)."""
    return list(vae.enc.linears) + list(vae.dec.linears)


def model_x(vae, rng, b):
    """Valid data for the model's likelihood: grey levels in [0, 1] for Bernoulli."""
    if vae.likelihood_name == "bernoulli":
        return rng.uniform(0.0, 1.0, (b, vae.x_dim))
    return rng.standard_normal((b, vae.x_dim))


def frey_bytes(faces: np.ndarray) -> bytes:
    """Build a MAT-file with the Frey layout around faces uint8 (1965, 28, 20)."""
    text = b"MATLAB 5.0 MAT-file, Platform: TEST, Created by the numpyvae tests"
    header = text.ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    n = faces.size
    body = (struct.pack("<II", 6, 8) + struct.pack("<II", 9, 0)          # flags: uint8 class
            + struct.pack("<II", 5, 8) + struct.pack("<ii", 560, 1965)   # dims
            + struct.pack("<HH", 1, 2) + b"ff\0\0"                       # name, small element
            + struct.pack("<II", 2, n) + faces.tobytes())                # miUINT8 data
    return header + struct.pack("<II", 14, len(body)) + body


# --------------------------------------------------------------------------- the notes' math
#: inline $...$ (not $$, not an escaped \$) and a code span `...`, as the notes write them
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$(?!\$)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def note_formulas(text):
    """(tex, display) of every formula of a note: ```math fences (display) and inline $...$
    outside code fences and code spans."""
    out, fence, block = [], None, []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("```"):
            if fence is None:
                fence = "math" if s == "```math" else "code"
            else:
                if fence == "math":
                    out.append(("\n".join(block), True))
                fence, block = None, []
            continue
        if fence == "math":
            block.append(line)
        elif fence is None:
            masked = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
            out += [(m.group(1), False) for m in INLINE_MATH.finditer(masked)]
    return out
