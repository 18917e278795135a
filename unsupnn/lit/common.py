"""Small pieces every LightningModule here shares."""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable, Iterable, Mapping

import torch
from hydra.utils import instantiate
from pytorch_lightning import LightningModule
from torch import Tensor

from unsupnn.data.loader import Batches, check_batches_per_step


def inputs_of(batch: Any) -> Tensor:
    """The inputs of a batch that may carry labels: ``x`` or ``(x, y)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def build_optimizer(config: dict, params: Iterable, *, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Instantiate a Hydra ``_partial_`` optimizer config (a plain dict) on ``params``.

    Optimizers that have a fused implementation (SGD, Adam, AdamW, ...) get it unless the config chooses
    (``fused`` or ``foreach`` set): the same update in one kernel per parameter instead of a handful of
    tensor operations, 1.5x (SGD) to 2.5x (Adam) faster on a CPU core, and standard on a GPU. Where the
    fused kernel does not apply (a device or dtype it does not cover) the plain implementation is used.
    """
    factory = instantiate(config)
    params = list(params)
    options = {"lr": lr, "weight_decay": weight_decay}
    chosen = set(getattr(factory, "keywords", {}) or {})
    if not chosen & {"fused", "foreach"} and _accepts(getattr(factory, "func", factory), "fused"):
        try:
            return factory(params, fused=True, **options)
        except (RuntimeError, ValueError, TypeError):
            pass  # e.g. a device or dtype the fused kernels do not cover
    return factory(params, **options)


def _accepts(fn: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def log_epoch(module: LightningModule, name: str, value: Tensor, **kwargs) -> None:
    """Log the epoch mean: accumulated on the device and reduced once per epoch, across DDP processes too
    (one all-reduce per metric per epoch, never a host sync per step)."""
    module.log(name, value, on_step=False, on_epoch=True, sync_dist=True, **kwargs)


def check_compile(option: Any) -> None:
    """``model.compile``: false, true (torch.compile's default backend, inductor) or a backend name."""
    if not isinstance(option, (bool, str)) or option == "":
        raise ValueError(
            f"model.compile={option!r}; use false, true (torch.compile with the inductor backend) or a torch.compile "
            "backend name such as inductor, aot_eager or cudagraphs"
        )


def compiled(fn: Callable, option: bool | str) -> Callable:
    """``fn`` itself, or ``torch.compile(fn)`` when ``option`` (see ``check_compile``) asks for it."""
    check_compile(option)
    if option is False:
        return fn
    return torch.compile(fn) if option is True else torch.compile(fn, backend=option)


class LeanHooks:
    """Mixin for a LightningModule (list it first): a cheaper ``__setattr__`` for the one attribute Lightning
    writes around every hook it calls, ``_current_fx_name`` (some 40 writes per training step).

    ``nn.Module.__setattr__`` looks every name up among parameters, buffers and submodules, a few
    microseconds per write: 5-10 % of the step of a model the size of an MNIST RBM on a CPU core. That
    name only ever holds a string or None, never a parameter, buffer or module, so storing it directly has
    exactly the effect of the full path.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


class SeveralUpdatesPerStep:
    """Mixin for a LightningModule with one optimizer (list it before LightningModule): ``batches_per_step``
    mini-batches per Lightning training step, each its own update.

    Lightning's loop costs 0.1-0.2 ms of Python per training step on a CPU core whatever the step computes
    (hooks, progress counters, callbacks, fetching the batch): 5-10 % of an MNIST RBM's CD-1 step at batch
    100 (docs/performance.md). So the datamodule serves this module's training batches in groups
    (``ArrayDataModule.train_dataloader``, ``data.loader.BatchGroups``) and one training step makes one
    update per batch of its group: the same updates in the same order with the same random draws as one
    batch per step, so the parameters come out bit for bit the same (tests/test_performance.py).

    What counts steps counts updates: ``trainer.global_step``, ``trainer.max_steps`` (a group stops there),
    checkpoints' step and the divergence check's step numbers. What counts the loop's batches (the progress
    bar, ``limit_train_batches``, an integer ``val_check_interval``) counts groups. A datamodule of one's own
    that serves single batches works too, one update per step.

    Each update is Lightning's manual optimization: the gradients set to None, ``manual_backward`` (which also
    runs DDP's gradient all-reduce and any precision plugin) and ``step`` of the one optimizer, so optimizer hooks and
    ``global_step`` see every update. Subclasses set ``batches_per_step`` and implement ``update_loss``; one
    whose gradient has a closed form may override ``backward_update``.
    """

    batches_per_step: int = 1

    @property
    def automatic_optimization(self) -> bool:
        return False

    def set_batches_per_step(self, n: int) -> None:
        check_batches_per_step(n)
        self.batches_per_step = n

    def update_loss(self, batch: Any) -> Tensor:
        """The objective of one mini-batch, whose gradient is the update; record the batch's metrics here."""
        raise NotImplementedError

    def backward_update(self, loss: Tensor) -> None:
        """Put the update's gradient in the parameters' ``.grad`` (they are None): ``loss``'s backward pass."""
        self.manual_backward(loss)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        opt = self.optimizers()
        params = [p for group in opt.param_groups for p in group["params"]]
        max_steps = self.trainer.max_steps
        losses = []
        for minibatch in batch if isinstance(batch, Batches) else (batch,):
            if 0 <= max_steps <= self.global_step:
                break  # the rest of the group would carry the run past trainer.max_steps
            loss = self.update_loss(minibatch)
            for p in params:  # what zero_grad(set_to_none=True) does, without its wrappers' cost per call
                p.grad = None
            self.backward_update(loss)
            opt.step()
            losses.append(loss.detach())
        # The group's losses, in order: what StopOnDivergence tests on the device.
        return torch.stack(losses) if losses else None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint written while these modules used automatic optimization keeps its step count in that
        # loop's progress; carried over, a resumed run counts on from it (and never re-initialises as if new).
        loops = checkpoint.get("loops", {}).get("fit_loop", {})
        auto = loops.get("epoch_loop.automatic_optimization.optim_progress", {}).get("optimizer", {}).get("step")
        manual = loops.get("epoch_loop.manual_optimization.optim_step_progress")
        if auto and manual and manual["total"]["completed"] == 0 < auto["total"]["completed"]:
            loops["epoch_loop.manual_optimization.optim_step_progress"] = copy.deepcopy(auto)


class EpochMeans:
    """Per-step scalars summed on the device and logged once, at the end of the epoch, as their means
    weighted by batch size: the values (and tags) ``log_epoch`` would give, without its per-call cost.

    ``LightningModule.log`` costs about half a millisecond of Python per call, as much as a 100 x 784 x 500
    matrix product on a CPU core; a training step logging four metrics would spend more time logging than
    computing. Here a step costs one ``stack`` and one in-place ``add_`` on the device (no host sync), and
    ``log`` hands each mean to ``log_epoch`` with the epoch's example count as its batch size, so
    Lightning's cross-process reduction weights the processes exactly as before.
    """

    def __init__(self, prog_bar: Iterable[str] = ()):
        self.prog_bar = set(prog_bar)
        self.reset()

    def reset(self) -> None:
        self.names: tuple[str, ...] = ()
        self.sums: Tensor | None = None
        self.count = 0

    def add(self, metrics: Mapping[str, Tensor], n: int) -> None:
        """Add one step's metrics (scalar tensors), each the mean over a batch of ``n`` examples."""
        names = tuple(metrics)
        values = torch.stack([v.detach() for v in metrics.values()])
        if self.sums is None:
            self.names, self.sums = names, values * n
        else:
            if names != self.names:
                raise ValueError(f"EpochMeans got metrics {names} after {self.names} in the same epoch")
            self.sums.add_(values, alpha=n)
        self.count += n

    def log(self, module: LightningModule) -> None:
        """Log every mean through ``log_epoch`` and start afresh (nothing is logged after an empty epoch)."""
        if self.sums is not None and self.count:
            for name, value in zip(self.names, (self.sums / self.count).unbind()):
                log_epoch(module, name, value, batch_size=self.count, prog_bar=name in self.prog_bar)
        self.reset()
