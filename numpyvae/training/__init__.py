"""The training wing: the loop around the model, and what it leaves on disk.

- ``trainer``: ``Trainer`` (the one loop for every model; its docstring states the model contract a
  new model meets), ``TrainConfig``, ``evaluate``, KL warm-up, divergence stop;
- ``checkpoint``: the ``.npz`` + ``.json`` checkpoint format (``allow_pickle=False``);
- ``plots``: the figures of a run (loss curves, reconstructions, samples, latent, manifold);
- ``rundir``: a fresh directory per run, ``runs/latest``, the lock of a directory in use, stale
  temporary files;
- ``memory``: the memory a model will need, estimated before anything is allocated;
- ``presets``: the papers' training protocols (``--preset NAME``).

The speed layer (thread count, the split step, the heap setting, Adam in blocks) is its own
wing, ``numpyvae/speed/``, which the command line hands to the trainer.

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""
