"""The downstream classifier: a (pretrained or fresh) encoder under a linear or MLP head."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from unsupnn.io import build_encoder
from unsupnn.lit.common import build_optimizer, log_epoch

DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True}


class LitClassifier(pl.LightningModule):
    """Encoder (built from its spec) + head, trained with cross-entropy.

    ``freeze_encoder=True`` is the linear probe (with ``on_features=True`` its batches are the frozen
    encoder's outputs, computed once instead of every epoch; ``forward`` still takes inputs); otherwise the encoder is fine-tuned at ``encoder_lr``
    (default: ``lr``) while the head learns at ``lr``. The weights of a pretrained encoder are loaded by
    the caller (``model.encoder.load_state_dict``), so the module needs nothing but plain values.
    """

    def __init__(
        self,
        *,
        encoder_spec: list[dict],
        n_classes: int,
        freeze_encoder: bool = False,
        head: str = "linear",
        head_hidden: int = 256,
        lr: float = 1e-3,
        encoder_lr: float | None = None,
        weight_decay: float = 0.0,
        optimizer: dict | None = None,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        lr_schedule: str = "constant",
        on_features: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = build_encoder(encoder_spec)
        width = self.encoder.out_features
        if head == "linear":
            self.head = nn.Linear(width, n_classes)
        elif head == "mlp":
            self.head = nn.Sequential(nn.Linear(width, head_hidden), nn.ReLU(), nn.Linear(head_hidden, n_classes))
        else:
            raise ValueError(f"classifier.head={head!r}; use 'linear' or 'mlp'")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"classifier.lr_schedule={lr_schedule!r}; use 'constant' or 'cosine'")
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"classifier.{name}={p}; a dropout rate is in [0, 1)")
        if freeze_encoder:
            self.encoder.requires_grad_(False)
        elif on_features:
            raise ValueError("on_features=True feeds the frozen encoder's outputs: it needs freeze_encoder=True")
        # One metric object per split, so each accumulates over its own epoch (keys avoid Module.train).
        self.acc = nn.ModuleDict({f"{s}_acc": MulticlassAccuracy(num_classes=n_classes, average="micro") for s in ("train", "val", "test")})

    def forward(self, x: Tensor) -> Tensor:
        hp = self.hparams
        if not (hp.dropout or hp.input_dropout):
            return self.head(self.encoder(x))
        # Dropout (Srivastava et al., 2014) on the input and on every hidden layer of an encoder being
        # trained; the encoder's own modules stay as exported, so its weights load either way.
        training = self.encoder.training and not hp.freeze_encoder
        x = F.dropout(x, hp.input_dropout, training)
        for layer in self.encoder:
            x = layer(x)
            if not isinstance(layer, nn.Linear):
                x = F.dropout(x, hp.dropout, training)
        return self.head(x)

    def on_train_epoch_start(self) -> None:
        if self.hparams.freeze_encoder:
            self.encoder.eval()  # a frozen encoder keeps eval-mode behaviour (dropout off) while training

    def _step(self, batch: Any, split: str) -> Tensor:
        x, y = batch
        # A probe's batches may hold the frozen encoder's outputs, computed once for the whole run.
        logits = self.head(x) if self.hparams.on_features else self(x)
        loss = F.cross_entropy(logits, y)
        acc = self.acc[f"{split}_acc"]
        acc(logits, y)
        log_epoch(self, f"{split}/loss", loss)  # the accuracy below is a metric object: it syncs its own counts
        self.log(f"{split}/acc", acc, on_step=False, on_epoch=True, prog_bar=split != "train")
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        groups = [{"params": self.head.parameters(), "lr": hp.lr}]
        if not hp.freeze_encoder:
            groups.append({"params": self.encoder.parameters(), "lr": hp.encoder_lr or hp.lr})
        optimizer = build_optimizer(hp.optimizer or DEFAULT_OPTIMIZER, groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "constant":
            return optimizer
        # Cosine decay to zero over the run (Loshchilov & Hutter, 2017), stepped once per epoch.
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.trainer.max_epochs))
        return {"optimizer": optimizer, "lr_scheduler": schedule}
