"""LightningModules: the training wrappers around the plain-torch models in unsupnn.nn."""

from unsupnn.lit.autoencoder import LitAutoencoder
from unsupnn.lit.classifier import LitClassifier
from unsupnn.lit.rbm import LitRBM

__all__ = ["LitAutoencoder", "LitClassifier", "LitRBM"]
