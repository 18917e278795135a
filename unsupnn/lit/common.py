"""Small pieces every LightningModule here shares."""

from __future__ import annotations

from typing import Any, Iterable

import torch
from hydra.utils import instantiate
from pytorch_lightning import LightningModule
from torch import Tensor


def inputs_of(batch: Any) -> Tensor:
    """The inputs of a batch that may carry labels: ``x`` or ``(x, y)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def build_optimizer(config: dict, params: Iterable, *, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Instantiate a Hydra ``_partial_`` optimizer config (a plain dict) on ``params``."""
    return instantiate(config)(params, lr=lr, weight_decay=weight_decay)


def log_epoch(module: LightningModule, name: str, value: Tensor, **kwargs) -> None:
    """Log the epoch mean: accumulated on the device and reduced once per epoch, across DDP processes too
    (one all-reduce per metric per epoch, never a host sync per step)."""
    module.log(name, value, on_step=False, on_epoch=True, sync_dist=True, **kwargs)
