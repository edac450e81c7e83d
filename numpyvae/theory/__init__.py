"""The theory wing: the documents' claims, measured on the models of the core.

- ``estimators``: importance-sampled log p(x), the K-sample bound, gradient estimators;
- ``linear_gaussian``: the linear-Gaussian model with its exact posterior and PPCA;
- ``amortization``: per-example posteriors and the amortization gap;
- ``maxent``: entropies at equal variance (the Gaussian is the largest);
- ``autoencoders``: PCA and the plain, sparse, denoising and contractive autoencoders.

These modules implement equations, so their public functions name them (``Derivation:``).
"""
