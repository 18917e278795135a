"""A TensorBoard grid of validation images as the model sees and redraws them."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid

TAG = "val/reconstructions"


class ReconstructionImages(pl.Callback):
    """Every ``every_n_epochs`` validation epochs (and after the last), draws ``n_images`` validation examples.

    The module's ``image_rows(x, generator)`` returns the rows of the grid, e.g. input | corrupted input |
    reconstruction, each shaped like ``x``. Only for image data (the datamodule's ``image_shape``), a
    TensorBoard logger and a module with ``image_rows``; anything else is skipped, so one callbacks config
    serves every model. The corruption is drawn from a fixed seed so epochs compare like with like.
    """

    def __init__(self, *, every_n_epochs: int = 5, n_images: int = 16):
        if every_n_epochs < 1 or n_images < 1:
            raise ValueError(f"every_n_epochs={every_n_epochs} and n_images={n_images} must both be >= 1")
        self.every_n_epochs, self.n_images = every_n_epochs, n_images

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if trainer.sanity_checking or ((trainer.current_epoch + 1) % self.every_n_epochs and not last):
            return
        board = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        dm = trainer.datamodule
        shape = getattr(dm, "image_shape", None)
        if board is None or shape is None or not hasattr(pl_module, "image_rows"):
            return
        x = (dm.x_val if len(dm.x_val) else dm.x_train)[: self.n_images].to(pl_module.device)
        generator = torch.Generator(device=x.device).manual_seed(0)
        with torch.no_grad():
            rows = pl_module.image_rows(x, generator)
        # One shared value range (the input's), so corruption outside it shows as saturated pixels.
        grid = make_grid(torch.cat(rows).reshape(-1, *shape).cpu(), nrow=len(x), padding=1, pad_value=1.0,
                         normalize=True, value_range=(float(x.min()), float(x.max())))
        board.experiment.add_image(TAG, grid, global_step=trainer.global_step)
