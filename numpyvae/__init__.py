"""numpyvae: a variational autoencoder in NumPy with every gradient written by hand.

The data's path through the package:
data (datasets) -> encoder (layers, model) -> reparameterize (reparam) -> decoder
(layers, model) -> likelihood (likelihoods) + KL (kl) -> optimizer (optim).
Every backward is checked by finite differences (gradcheck); every function
names the equation it implements in derivations/.
"""
from . import (amortization, autoencoders, datasets, estimators, gradcheck, kl, layers,
               likelihoods, linear_gaussian, maxent, optim, reparam)
from .amortization import amortization_gap, fit_local_posterior
from .estimators import (elbo_energy_entropy, evaluate_bounds, iwae_bound, log_likelihood,
                         log_mean_exp, pathwise_grad, score_function_grad)
from .linear_gaussian import LinearGaussian, ppca_ml
from .model import VAE, Terms
from .optim import SGD, Adagrad, Adam, make_optimizer

__version__ = "0.1.0"

__all__ = ["VAE", "Terms", "SGD", "Adagrad", "Adam", "make_optimizer",
           "log_likelihood", "iwae_bound", "log_mean_exp", "evaluate_bounds",
           "elbo_energy_entropy", "score_function_grad", "pathwise_grad",
           "LinearGaussian", "ppca_ml", "fit_local_posterior", "amortization_gap",
           "amortization", "autoencoders", "datasets", "estimators", "gradcheck", "kl",
           "layers", "likelihoods", "linear_gaussian", "maxent", "optim", "reparam"]
