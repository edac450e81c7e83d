"""Package data for numpyvae (no code).

Holds the MNIST test set (t10k) as the two original gzip IDX files, read by
``numpyvae.datasets.load_embedded_mnist`` through ``importlib.resources``.
See LICENSE-MNIST.txt in this folder for authorship, license and checksums.
"""
