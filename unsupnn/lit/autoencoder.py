"""LightningModule around unsupnn.nn.Autoencoder: every preset (ae, sparse_ae, contractive_ae, dae)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from unsupnn.lit.common import EpochMeans, LeanHooks, SeveralUpdatesPerStep, build_optimizer, check_compile, compiled, inputs_of
from unsupnn.nn.autoencoder import Autoencoder
from unsupnn.nn.noise import corrupt

DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True}


class LitAutoencoder(LeanHooks, SeveralUpdatesPerStep, pl.LightningModule):
    """Trains an Autoencoder; every keyword argument besides the ones below goes to ``unsupnn.nn.Autoencoder``
    (``hidden_dims``, ``activation``, ``loss``, ``tied``, ``sparsity``, ``corruption``, ...).

    ``name`` is what runs report as the model (``ae``, ``sparse_ae``, ...). ``optimizer`` is a Hydra
    ``_partial_`` config receiving the parameters, ``lr`` and ``weight_decay``. ``image_rows`` feeds the
    TensorBoard reconstruction grid (``configs/callbacks``). Every argument is a plain value and the full autoencoder config joins the hyper-parameters, so
    checkpoints rebuild with ``weights_only=True``. ``compile``: ``torch.compile`` the objective (forward
    and backward) when training starts: true for the inductor backend, or a backend name (docs/performance.md).
    ``batches_per_step``: optimizer updates per Lightning training step, one per mini-batch: the same training
    as one per step, with Lightning's per-step loop paid once per that many (``lit.common.SeveralUpdatesPerStep``).
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
        compile: bool | str = False,
        batches_per_step: int = 10,
        **autoencoder: Any,
    ):
        super().__init__()
        check_compile(compile)
        self.save_hyperparameters()
        self.set_batches_per_step(batches_per_step)
        self.model_name = name
        self.autoencoder = Autoencoder(n_features=n_features, **autoencoder)
        self.hparams.update(self.autoencoder.config)
        # Epoch means summed on the device, logged once per epoch (lit.common.EpochMeans).
        self._train_metrics = EpochMeans(prog_bar=["train/recon"])
        self._val_metrics = EpochMeans(prog_bar=["val/recon"])
        self._objective = None  # Autoencoder.objective, compiled or not: set when training starts

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

    def on_train_start(self) -> None:
        self._objective = compiled(self.autoencoder.objective, self.hparams.get("compile", False))

    def on_train_epoch_start(self) -> None:
        self._train_metrics.reset()

    def update_loss(self, batch: Any) -> Tensor:
        """One update's objective; SeveralUpdatesPerStep makes the update."""
        x = inputs_of(batch)
        out = (self._objective or self.autoencoder.objective)(x)
        with torch.no_grad():
            metrics = {
                "train/loss": out.loss,
                "train/recon_loss": out.recon_loss,
                "train/recon": F.mse_loss(out.recon, x),
                "train/code_mean": out.code.mean(),
            }
            metrics.update((f"train/{name}", value) for name, value in out.penalties.items())
            self._train_metrics.add(metrics, len(x))
        return out.loss

    def on_train_epoch_end(self) -> None:
        self._train_metrics.log(self)

    def on_validation_epoch_start(self) -> None:
        self._val_metrics.reset()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x = inputs_of(batch)
        ae = self.autoencoder
        code = ae.encode(x)
        a = ae.decode_preactivation(code)
        metrics = {
            "val/recon_loss": ae.reconstruction_loss(a, x),
            "val/recon": F.mse_loss(ae.output(a), x),
            "val/code_mean": code.mean(),
        }
        if ae.denoising:
            x_in = corrupt(x, ae.corruption, ae.corruption_level)
            metrics["val/denoise"] = F.mse_loss(ae(x_in), x)
        self._val_metrics.add(metrics, len(x))

    def on_validation_epoch_end(self) -> None:
        self._val_metrics.log(self)

    def configure_optimizers(self):
        hp = self.hparams
        return build_optimizer(hp.optimizer or DEFAULT_OPTIMIZER, self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
