"""The mathematics in plain torch: nothing here imports Lightning, Hydra or TensorBoard."""

from unsupnn.io import register_checkpoint_reader
from unsupnn.nn.autoencoder import Autoencoder
from unsupnn.nn.rbm import RBM
from unsupnn.registry import register_model

register_model("rbm")(RBM)
register_model("autoencoder")(Autoencoder)


@register_checkpoint_reader("rbm")
def rbm_from_checkpoint(hparams: dict) -> RBM:
    """The RBM of a LitRBM checkpoint: LitRBM keeps it at ``.rbm`` and names the visible units n_features."""
    return RBM(n_visible=hparams["n_features"], n_hidden=hparams["n_hidden"], visible=hparams["visible"])


@register_checkpoint_reader("autoencoder")
def autoencoder_from_checkpoint(hparams: dict) -> Autoencoder:
    """The Autoencoder of a LitAutoencoder checkpoint, kept at ``.autoencoder``; the hparams hold its config."""
    return Autoencoder.from_config(hparams)


__all__ = ["Autoencoder", "RBM"]
