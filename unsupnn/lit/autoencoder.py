"""LightningModule around unsupnn.nn.Autoencoder: every preset (ae, sparse_ae, contractive_ae, dae)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from unsupnn.lit.common import build_optimizer, inputs_of, log_epoch
from unsupnn.nn.autoencoder import Autoencoder
from unsupnn.nn.noise import corrupt

DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True}


class LitAutoencoder(pl.LightningModule):
    """Trains an Autoencoder; every keyword argument besides the ones below goes to ``unsupnn.nn.Autoencoder``
    (``hidden_dims``, ``activation``, ``loss``, ``tied``, ``sparsity``, ``corruption``, ...).

    ``name`` is what runs report as the model (``ae``, ``sparse_ae``, ...). ``optimizer`` is a Hydra
    ``_partial_`` config receiving the parameters, ``lr`` and ``weight_decay``. ``image_rows`` feeds the
    TensorBoard reconstruction grid (``configs/callbacks``). Every argument is a plain value and the full autoencoder config joins the hyper-parameters, so
    checkpoints rebuild with ``weights_only=True``.
    """

    model_name = "ae"

    def __init__(
        self,
        *,
        n_features: int,
        name: str = "ae",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: dict | None = None,
        **autoencoder: Any,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model_name = name
        self.autoencoder = Autoencoder(n_features=n_features, **autoencoder)
        self.hparams.update(self.autoencoder.config)

    # the feature map, also what save_encoder exports
    def forward(self, x: Tensor) -> Tensor:
        return self.autoencoder.encode(x)

    def check_input(self, x: Tensor, what: str = "the data") -> None:
        self.autoencoder.check_input(x, what)

    def encoder_spec(self) -> list[dict]:
        return self.autoencoder.encoder_spec()

    def encoder_state_dict(self) -> dict[str, Tensor]:
        return self.autoencoder.encoder_state_dict()

    def image_rows(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """Input, corrupted input (denoising only) and reconstruction: the rows of the TensorBoard grid."""
        ae = self.autoencoder
        if not ae.denoising:
            return [x, ae(x)]
        x_in = corrupt(x, ae.corruption, ae.corruption_level, generator)
        return [x, x_in, ae(x_in)]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x = inputs_of(batch)
        out = self.autoencoder.objective(x)
        log_epoch(self, "train/loss", out.loss)
        log_epoch(self, "train/recon_loss", out.recon_loss)
        log_epoch(self, "train/recon", torch.mean((out.recon - x) ** 2), prog_bar=True)
        log_epoch(self, "train/code_mean", out.code.mean())
        for name, value in out.penalties.items():
            log_epoch(self, f"train/{name}", value)
        return out.loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x = inputs_of(batch)
        ae = self.autoencoder
        code = ae.encode(x)
        a = ae.decode_preactivation(code)
        log_epoch(self, "val/recon_loss", ae.reconstruction_loss(a, x))
        log_epoch(self, "val/recon", torch.mean((ae.output(a) - x) ** 2), prog_bar=True)
        log_epoch(self, "val/code_mean", code.mean())
        if ae.denoising:
            x_in = corrupt(x, ae.corruption, ae.corruption_level)
            log_epoch(self, "val/denoise", torch.mean((ae(x_in) - x) ** 2))

    def configure_optimizers(self):
        hp = self.hparams
        return build_optimizer(hp.optimizer or DEFAULT_OPTIMIZER, self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
