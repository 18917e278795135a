"""Histograms of parameters and activations, and the hyperparameters with their final metrics."""

from __future__ import annotations

import pytorch_lightning as pl
from torch import nn

from unsupnn.callbacks.base import EveryNEpochs, monitor_inputs, tensorboard_logger


def features_of(pl_module: pl.LightningModule, x):
    """Hidden features: a classifier's encoder output, else the unsupervised module's forward."""
    encoder = getattr(pl_module, "encoder", None)
    return encoder(x) if isinstance(encoder, nn.Module) else pl_module(x)


class Histograms(EveryNEpochs):
    """``params/<name>`` for every weight and bias, ``activations/hidden`` on fixed inputs."""

    def __init__(self, *, every_n_epochs: int = 5, n_examples: int = 500):
        super().__init__(every_n_epochs=every_n_epochs)
        self.n_examples = n_examples

    def draw(self, writer, trainer, pl_module) -> None:
        step = trainer.global_step
        for name, param in pl_module.named_parameters():
            writer.add_histogram(f"params/{name}", param.detach().float().cpu(), step)
        x = monitor_inputs(trainer, self.n_examples)
        if x is not None:
            writer.add_histogram("activations/hidden", features_of(pl_module, x.to(pl_module.device)).float().cpu(), step)


class HParams(pl.Callback):
    """The module's hyperparameters with the run's final metrics (``hparams/<metric>``), for
    TensorBoard's HParams view: the runs of a sweep side by side."""

    def __init__(self, *, metrics: list[str] | None = None):
        self.metrics = metrics

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        board = tensorboard_logger(trainer)
        if board is None:
            return
        final = {k: float(v) for k, v in trainer.callback_metrics.items() if self.metrics is None or k in self.metrics}
        params = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in pl_module.hparams.items()}
        board.log_hyperparams(params, metrics={f"hparams/{k}": v for k, v in final.items()})
