"""The training wing: the loop around the model, and what it leaves on disk.

- ``trainer``: ``Trainer`` (the one loop for every model; its docstring states the model contract a
  new model meets), ``TrainConfig``, ``evaluate``, KL warm-up, divergence stop;
- ``checkpoint``: the ``.npz`` + ``.json`` checkpoint format (``allow_pickle=False``);
- ``plots``: the figures of a run (loss curves, reconstructions, samples, latent, manifold);
- ``rundir``: a fresh directory per run, ``runs/latest``, the lock of a directory in use, stale
  temporary files;
- ``threads``: the thread count of a run (``--threads N|auto``), applied with threadpoolctl;
- ``parallel``: a training step on several threads, the minibatch split across replicas;
- ``memory``: the memory a model will need, estimated before anything is allocated, and the
  heap setting that keeps a step's temporaries from page-faulting;
- ``presets``: the papers' training protocols (``--preset NAME``).

Bookkeeping rather than mathematics: this wing carries no ``Derivation:`` lines.
"""
