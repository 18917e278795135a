"""TensorBoard images of what a model has learnt: reconstructions, filters, samples of its Gibbs chains.

Each draws only for image data (the datamodule's ``image_shape``) and for modules that offer what it
draws, so one callbacks config serves every model.
"""

from __future__ import annotations

import torch

from unsupnn.callbacks.base import EveryNEpochs, image_grid, monitor_inputs


class ReconstructionImages(EveryNEpochs):
    """``val/reconstructions``: the module's ``image_rows(x, generator)``, e.g. input | corrupted input |
    reconstruction, one row each. The corruption is drawn from a fixed seed so epochs compare."""

    def __init__(self, *, every_n_epochs: int = 5, n_images: int = 16):
        super().__init__(every_n_epochs=every_n_epochs)
        if n_images < 1:
            raise ValueError(f"n_images={n_images}; it must be >= 1")
        self.n_images = n_images

    def draw(self, writer, trainer, pl_module) -> None:
        shape = getattr(trainer.datamodule, "image_shape", None)
        x = monitor_inputs(trainer, self.n_images)
        if shape is None or x is None or not hasattr(pl_module, "image_rows"):
            return
        x = x.to(pl_module.device)
        rows = pl_module.image_rows(x, torch.Generator(device=x.device).manual_seed(0))
        # One shared value range (the input's), so corruption outside it shows as saturated pixels.
        grid = image_grid(torch.cat(rows), shape, len(x), value_range=(float(x.min()), float(x.max())))
        writer.add_image("val/reconstructions", grid, trainer.global_step)


class Filters(EveryNEpochs):
    """``filters``: each hidden unit's incoming weights (first encoder layer) as an image."""

    def __init__(self, *, every_n_epochs: int = 5, n_filters: int = 100):
        super().__init__(every_n_epochs=every_n_epochs)
        self.n_filters = n_filters

    def draw(self, writer, trainer, pl_module) -> None:
        shape = getattr(trainer.datamodule, "image_shape", None)
        if shape is None or not hasattr(pl_module, "encoder_state_dict"):
            return
        weights = pl_module.encoder_state_dict()["0.weight"][: self.n_filters]
        nrow = max(1, round(len(weights) ** 0.5))
        writer.add_image("filters", image_grid(weights, shape, nrow, scale_each=True), trainer.global_step)


class Samples(EveryNEpochs):
    """``samples``: the module's ``sample(n, gibbs_steps)`` (an RBM's persistent chains under PCD)."""

    def __init__(self, *, every_n_epochs: int = 5, n_samples: int = 64, gibbs_steps: int = 1000):
        super().__init__(every_n_epochs=every_n_epochs)
        self.n_samples, self.gibbs_steps = n_samples, gibbs_steps

    def draw(self, writer, trainer, pl_module) -> None:
        shape = getattr(trainer.datamodule, "image_shape", None)
        if shape is None or not hasattr(pl_module, "sample"):
            return
        samples = pl_module.sample(self.n_samples, gibbs_steps=self.gibbs_steps)
        nrow = max(1, round(len(samples) ** 0.5))
        writer.add_image("samples", image_grid(samples, shape, nrow, value_range=(0.0, 1.0)), trainer.global_step)
