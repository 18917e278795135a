"""Stop a run the moment its loss or a parameter stops being a finite number."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


class DivergenceError(RuntimeError):
    """Training produced NaN or infinite values; the message names the quantity, the step and the fix."""


class StopOnDivergence(pl.Callback):
    """Watches the training loss of every update and the parameters, and raises DivergenceError once a value
    is NaN or infinite, before any checkpoint holding it is written: the last one on disk stays the last
    good one.

    Every loss is tested on the device, without a host sync: the step (update) number of the first
    non-finite loss is kept in a device tensor. A training step may hold several updates, and then several
    losses (``lit.common.SeveralUpdatesPerStep``). The flag is read, and the parameters are tested, at the
    end of each training step in which another ``every_n_steps`` updates complete, at the end of every epoch
    and before every checkpoint is saved (a checkpoint whose loss or parameters are not finite is never
    written). Reading a flag every update would stall a GPU once per update and cost a third of an MNIST
    RBM's CPU step (the isfinite of every parameter); so a diverged run goes on for fewer than
    ``every_n_steps`` more updates (plus the rest of its training step) before it stops, and the message still
    names the update whose loss first went non-finite. ``lr_key`` is the config key the message suggests lowering.
    """

    def __init__(self, *, lr_key: str = "model.lr", every_n_steps: int = 50):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}; check at least every step (1) or every few steps")
        self.lr_key, self.every_n_steps = lr_key, every_n_steps
        self._first_bad: torch.Tensor | None = None  # step of the first non-finite loss, -1 while none
        self._bad_loss: torch.Tensor | None = None  # that loss
        self._steps = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_bad = torch.full((), -1, dtype=torch.long, device=pl_module.device)
        self._bad_loss = torch.zeros((), device=pl_module.device)
        self._steps = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or self._first_bad is None:
            return
        # One loss per update of the step (several for a module making several: lit.common.SeveralUpdatesPerStep),
        # the last one made by update number global_step.
        loss = loss.detach().float().reshape(-1)
        n = len(loss)
        bad = ~torch.isfinite(loss)
        first = bad.to(torch.uint8).argmax(0, keepdim=True)  # the first non-finite one (0 when none)
        new = (self._first_bad < 0) & bad.any()  # device ops only: nothing waits for the device
        self._first_bad.copy_(torch.where(new, trainer.global_step - n + 1 + first, self._first_bad).squeeze(0))
        self._bad_loss.copy_(torch.where(new, loss.gather(0, first), self._bad_loss).squeeze(0))
        before, self._steps = self._steps, self._steps + n
        if self._steps // self.every_n_steps > before // self.every_n_steps:
            self.check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Raising here aborts the save: a checkpoint that holds a diverged model never reaches the disk.
        self.check(trainer, pl_module)

    def check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Raise DivergenceError if a loss since the start, or a parameter now, is not finite (one host sync)."""
        if self._first_bad is None:
            return
        params = [p.detach() for p in pl_module.parameters()]
        flags = torch.stack([self._first_bad < 0, *(torch.isfinite(p).all() for p in params)])
        if bool(flags.all()):
            return
        if not bool(flags[0]):
            step = int(self._first_bad)
            what = f"the training loss is {float(self._bad_loss)}"
        else:
            step = trainer.global_step
            names = [n for n, p in pl_module.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
            what = f"parameter {names[0]} holds NaN or infinite values"
        saver = trainer.checkpoint_callback
        last = (saver.last_model_path or saver.best_model_path) if saver else ""
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        lr = pl_module.hparams.get("lr")
        raise DivergenceError(
            f"training diverged at step {step} (epoch {trainer.current_epoch}): {what}; {kept}. "
            f"Lower the learning rate ({self.lr_key}={lr}) or standardise the data, then start again"
        )
