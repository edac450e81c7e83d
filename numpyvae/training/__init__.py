"""The training wing: the loop around the model, and what it leaves on disk.

- ``trainer``: ``Trainer``, ``TrainConfig``, ``evaluate``, KL warm-up, divergence stop;
- ``checkpoint``: the ``.npz`` + ``.json`` checkpoint format (``allow_pickle=False``);
- ``plots``: the figures of a run (loss curves, reconstructions, samples, latent, manifold);
- ``rundir``: a fresh directory per run, ``runs/latest``, the lock of a directory in use, stale
  temporary files;
- ``threads``: the BLAS thread count of a run (``--threads N|auto``), via threadpoolctl;
- ``memory``: the memory a model will need, estimated before anything is allocated.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""
