"""The mathematics in plain torch: nothing here imports Lightning, Hydra or TensorBoard."""

from unsupnn.nn.rbm import RBM
from unsupnn.registry import register_model

register_model("rbm")(RBM)

__all__ = ["RBM"]
