"""unsupnn: pretrain encoders without labels (RBMs, autoencoders), hand them to models with few.

``import unsupnn`` stays light: plain torch and safetensors only (no Lightning, Hydra or TensorBoard).
``unsupnn.load_encoder`` reads an exported encoder or a training checkpoint into a plain ``nn.Sequential``;
``unsupnn.sklearn`` (imported on its own) holds the scikit-learn transformers.
"""

from unsupnn import nn
from unsupnn.io import EncoderFormatError, build_encoder, load_encoder, save_encoder
from unsupnn.registry import build_model, list_models

__version__ = "0.1.0"
__all__ = ["EncoderFormatError", "build_encoder", "build_model", "list_models", "load_encoder", "nn", "save_encoder"]
