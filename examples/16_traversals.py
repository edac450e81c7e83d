"""Latent traversals of any trained model: a grid per latent dimension and an animated GIF.

Loads a checkpoint written by ``numpyvae train`` (any model with an encoder mean and a decoder:
the plain VAE, a learned-prior VAE, the family), encodes one image of its data set, and decodes
that code with one dimension at a time set to each of ``--steps`` values in [-range, range]
(derivations/16_disentangling.md, eq. (16.6)). Rows are ordered by how much the encoder means
vary over the data (the most active dimension first, eq. (9.3)); a row that changes nothing is a
collapsed dimension.

    numpyvae train --dataset shapes --beta 4 --z-dim 10 --epochs 20 --out runs/shapes-b4
    python examples/16_traversals.py runs/shapes-b4/checkpoint.npz --out /tmp/trav

Writes <out>/16_traversals.png and <out>/16_traversals.gif.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from _theory_common import out_dir, parser  # noqa: E402

from numpyvae.data import load_dataset  # noqa: E402
from numpyvae.theory import disentangle  # noqa: E402
from numpyvae.training import checkpoint as ck  # noqa: E402


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a checkpoint.npz written by numpyvae train")
    p.add_argument("--index", type=int, default=0, help="which validation image gives the reference code")
    p.add_argument("--range", type=float, default=2.5, help="traverse each dimension over [-range, range]")
    p.add_argument("--steps", type=int, default=11, help="values per dimension (default 11)")
    p.add_argument("--data-dir", default=None, help="directory of real data sets, if the run used one")
    args = p.parse_args(argv)
    if args.steps < 2 or not args.range > 0 or args.index < 0:
        p.error("--steps must be >= 2, --range > 0 and --index >= 0")
    try:
        c = ck.load(args.checkpoint)
        model = c.build_model()
    except (OSError, ck.CheckpointError) as err:
        p.error(f"checkpoint: {err}")
    if not hasattr(model, "encode") or not hasattr(model, "decode_mean") or not hasattr(model, "z_dim"):
        p.error(f"checkpoint: a {type(model).__name__} has no Gaussian latent code to traverse")
    data = load_dataset(c.extra.get("dataset", "mnist-embedded"), data_dir=args.data_dir,
                        seed=int(c.extra.get("data_seed", 0)))
    if data.image_shape is None:
        p.error(f"the data set {data.name!r} has no images to draw")
    x = data.x_val[:2000].astype(model.dtype)
    if args.index >= len(x):
        p.error(f"--index must be below {len(x)}")
    mu = np.asarray(model.encode(x)[0], dtype=np.float64)
    order = np.argsort(mu.var(0))[::-1]
    values = np.linspace(-args.range, args.range, args.steps)
    imgs = disentangle.traverse(lambda z: model.decode_mean(z.astype(model.dtype)), mu[args.index], values)
    imgs = np.clip(imgs[order], 0, 1)
    labels = [f"z[{j}] var {mu[:, j].var():.2f}" for j in order]
    out = out_dir(args)
    png = disentangle.save_traversal_png(imgs, data.image_shape, out / "16_traversals.png", labels, values,
                                         f"traversals of {args.checkpoint} (reference: validation image {args.index})")
    gif = disentangle.save_traversal_gif(imgs, data.image_shape, out / "16_traversals.gif")
    print(f"[saved {png}]\n[saved {gif}]")


if __name__ == "__main__":
    main()
