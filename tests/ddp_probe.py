"""Test-only pieces that the DDP test injects through the config (PYTHONPATH=tests): production code stays clean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig

from unsupnn.data import DigitsDataModule
from unsupnn.data.loader import Batches


class IdDigits(DigitsDataModule):
    """Digits whose label is the example's row number, so every training batch names the examples in it."""

    def load_arrays(self):
        x, _ = super().load_arrays()
        return x, np.arange(len(x))


class RecordRank(pl.Callback):
    """Writes, per rank, the example ids of each training epoch, the run dir Hydra gave it and its final weights."""

    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.epochs: list[list[int]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for x, ids in batch if isinstance(batch, Batches) else [batch]:  # a step may hold several batches
            self.epochs[-1].extend(ids.tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rank = trainer.global_rank
        record = {
            "rank": rank,
            "world_size": trainer.world_size,
            "epochs": self.epochs,
            "train_ids": trainer.datamodule.y_train.tolist(),
            "output_dir": HydraConfig.get().runtime.output_dir,
        }
        (self.out_dir / f"rank{rank}.json").write_text(json.dumps(record))
        torch.save({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}, self.out_dir / f"rank{rank}.pt")
