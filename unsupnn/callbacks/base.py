"""What the monitoring callbacks share: the TensorBoard writer, fixed inputs, grids, an every-N schedule."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid


def tensorboard_logger(trainer: pl.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


def monitor_inputs(trainer: pl.Trainer, n: int) -> torch.Tensor | None:
    """The first n validation examples (training examples without a validation split), or None.

    Always the same rows, so what is drawn epoch after epoch compares like with like."""
    dm = trainer.datamodule
    x = getattr(dm, "x_val", None)
    if x is None or not len(x):
        x = getattr(dm, "x_train", None)
    return None if x is None else x[:n]


def image_grid(images: torch.Tensor, shape: tuple[int, ...], nrow: int, **kwargs) -> torch.Tensor:
    """Flat images as one grid (normalised for display; kwargs go to torchvision's make_grid)."""
    images = images.detach().float().cpu().reshape(-1, *shape)
    return make_grid(images, nrow=nrow, padding=1, pad_value=1.0, normalize=True, **kwargs)


class EveryNEpochs(pl.Callback):
    """Calls ``draw(writer, trainer, pl_module)`` under no_grad at the end of every ``every_n_epochs``-th
    validation epoch and of the last one, when the trainer has a TensorBoard logger."""

    def __init__(self, *, every_n_epochs: int = 5):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs={every_n_epochs}; it must be >= 1 (drop the callback to turn it off)")
        self.every_n_epochs = every_n_epochs

    def due(self, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        return last or (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        board = tensorboard_logger(trainer)
        if board is not None and self.due(trainer):
            with torch.no_grad():
                self.draw(board.experiment, trainer, pl_module)

    def draw(self, writer, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError
