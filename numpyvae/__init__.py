"""numpyvae: a variational autoencoder in NumPy with every gradient written by hand.

The data's path through the package:
data (datasets) -> encoder (layers, model) -> reparameterize (reparam) -> decoder
(layers, model) -> likelihood (likelihoods) + KL (kl) -> optimizer (optim).
Every backward is checked by finite differences (gradcheck); every function
names the equation it implements in derivations/.
"""
from . import gradcheck, kl, layers, likelihoods, optim, reparam
from .model import VAE, Terms
from .optim import SGD, Adagrad, Adam, make_optimizer

__version__ = "0.1.0"

__all__ = ["VAE", "Terms", "SGD", "Adagrad", "Adam", "make_optimizer",
           "gradcheck", "kl", "layers", "likelihoods", "optim", "reparam"]
