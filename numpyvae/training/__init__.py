"""The training wing: the loop around the model, and what it leaves on disk.

- ``trainer``: ``Trainer``, ``TrainConfig``, ``evaluate``, KL warm-up, divergence stop;
- ``checkpoint``: the ``.npz`` + ``.json`` checkpoint format (``allow_pickle=False``);
- ``plots``: the figures of a run (loss curves, reconstructions, samples, latent, manifold).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""
