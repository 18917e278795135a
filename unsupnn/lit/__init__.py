"""LightningModules: the training wrappers around the plain-torch models in unsupnn.nn."""

from unsupnn.lit.classifier import LitClassifier
from unsupnn.lit.rbm import LitRBM

__all__ = ["LitClassifier", "LitRBM"]
