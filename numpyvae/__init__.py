"""numpyvae: a variational autoencoder in NumPy with every gradient written by hand.

The core, at the top of the package, follows the data's path:
encoder (layers, model) -> reparameterize (reparam) -> decoder (layers, model)
-> likelihood (likelihoods) + KL (kl) -> optimizer (optim), every backward checked
by finite differences (gradcheck). Everything else lives in a wing named for what it
holds: data/ (where x comes from), training/ (the loop, checkpoints, figures),
theory/ (the documents' claims, measured), teaching/ (exercises and grading), speed/ (what makes training
faster, handed to the trainer by the command line), cli/.
The core imports no wing.
"""
from . import data, family, gradcheck, iwae, kl, layers, likelihoods, model, optim, reparam, theory, vqvae
from .theory.amortization import amortization_gap, fit_local_posterior
from .theory.estimators import (elbo_energy_entropy, evaluate_bounds, log_likelihood,
                                pathwise_grad, score_function_grad)
from .theory.linear_gaussian import LinearGaussian, ppca_ml
from .iwae import iwae_bound, log_mean_exp
from .model import VAE, Terms
from .family import FamilyVAE, FamilyTerms
from .vqvae import VQVAE, VQTerms
from .optim import SGD, Adagrad, Adam, make_optimizer

__version__ = "0.1.0"

__all__ = ["VAE", "Terms", "FamilyVAE", "FamilyTerms", "VQVAE", "VQTerms", "SGD", "Adagrad", "Adam", "make_optimizer",
           "log_likelihood", "iwae_bound", "log_mean_exp", "evaluate_bounds",
           "elbo_energy_entropy", "score_function_grad", "pathwise_grad",
           "LinearGaussian", "ppca_ml", "fit_local_posterior", "amortization_gap",
           "data", "family", "gradcheck", "iwae", "kl", "layers", "likelihoods", "model", "optim", "reparam",
           "theory", "vqvae"]
