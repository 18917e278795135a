"""The scikit-learn front door: transformers fitting unsupnn's models with the same nn/ code as Lightning.

``RBMTransformer`` (a drop-in for ``sklearn.neural_network.BernoulliRBM``) and
``AutoencoderTransformer``. A fitted one exports its encoder with ``unsupnn.save_encoder``.
"""

from unsupnn.sklearn.autoencoder import AutoencoderTransformer
from unsupnn.sklearn.rbm import RBMTransformer

__all__ = ["AutoencoderTransformer", "RBMTransformer"]
