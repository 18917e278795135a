"""LightningModule around unsupnn.nn.RBM: CD-k and persistent CD with any torch optimizer."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from unsupnn.lit.common import (EpochMeans, LeanHooks, SeveralUpdatesPerStep, build_optimizer, check_compile, compiled,
                                inputs_of, log_epoch)
from unsupnn.nn.rbm import RBM, free_energy_gap, pseudo_log_likelihood

DEFAULT_OPTIMIZER = {"_target_": "torch.optim.SGD", "_partial_": True, "momentum": 0.9}
GIBBS_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


class LitRBM(LeanHooks, SeveralUpdatesPerStep, pl.LightningModule):
    """Trains an RBM by CD-k (``persistent=False``) or PCD-k (``persistent=True``, ``n_chains`` chains).

    Every argument is a plain value (checkpoints load with ``torch.load(weights_only=True)``);
    ``optimizer`` is a Hydra ``_partial_`` config that receives the parameters, ``lr`` and ``weight_decay``.
    ``compile``: ``torch.compile`` the CD step (``RBM.cd_step``, forward and update) when training starts:
    true for the inductor backend, or a backend name; worth it on a GPU, not on a CPU (docs/performance.md).
    ``gibbs_dtype``: ``bfloat16`` runs the products that only draw the chains' next states (PCD, and CD-k
    beyond its first step) in bf16; statistics, objective and metrics stay float32 (``RBM.cd_step``).
    ``batches_per_step``: CD updates per Lightning training step, one per mini-batch: the same training as
    one per step, with Lightning's per-step loop paid once per that many (``lit.common.SeveralUpdatesPerStep``).
    """

    model_name = "rbm"

    def __init__(
        self,
        *,
        n_features: int,
        n_hidden: int = 128,
        visible: str = "bernoulli",
        k: int = 1,
        persistent: bool = False,
        n_chains: int = 100,
        lr: float = 0.05,
        weight_decay: float = 0.0,
        optimizer: dict | None = None,
        fe_gap_examples: int = 500,
        compile: bool | str = False,
        gibbs_dtype: str = "float32",
        batches_per_step: int = 10,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.set_batches_per_step(batches_per_step)
        if k < 1:
            raise ValueError(f"model.k={k}: contrastive divergence needs at least one Gibbs step")
        check_compile(compile)
        if gibbs_dtype not in GIBBS_DTYPES:
            raise ValueError(f"model.gibbs_dtype={gibbs_dtype!r}; use one of {list(GIBBS_DTYPES)}")
        self._gibbs_dtype = GIBBS_DTYPES[gibbs_dtype]
        self.rbm = RBM(n_visible=n_features, n_hidden=n_hidden, visible=visible)
        # Persistent chains live in a buffer so checkpoints carry them; `chains_ready` marks them started.
        # Under DDP each process keeps its own chains: configs/trainer/ddp.yaml turns off buffer broadcasting.
        self.register_buffer("chains", torch.zeros(n_chains if persistent else 0, n_features))
        self.register_buffer("chains_ready", torch.tensor(False))
        # Epoch means summed on the device, logged once per epoch (lit.common.EpochMeans).
        self._train_metrics = EpochMeans()
        self._recon_metrics = EpochMeans(prog_bar=["train/recon"])
        self._val_metrics = EpochMeans(prog_bar=["val/recon"])
        self._cd_step = None  # RBM.cd_step, compiled or not: set when training starts
        self._recon_every = 1  # PCD: updates between reconstructions of the data (trainer.log_every_n_steps)
        self._closed_form = False  # gradients straight from the CD step, without autograd: set when training starts
        self._step = None  # the last CD step (its statistics give the closed-form gradient)

    # the feature map, also what save_encoder exports
    def forward(self, v: Tensor) -> Tensor:
        return self.rbm.transform(v)

    def check_input(self, x: Tensor, what: str = "the data") -> None:
        self.rbm.check_input(x, what)

    def encoder_spec(self) -> list[dict]:
        return self.rbm.encoder_spec()

    def encoder_state_dict(self) -> dict[str, Tensor]:
        return self.rbm.encoder_state_dict()

    def image_rows(self, v: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """Input and mean-field reconstruction: the rows of the TensorBoard reconstruction grid."""
        return [v, self.rbm.reconstruct(v)]

    @torch.no_grad()
    def sample(self, n: int, gibbs_steps: int = 1000) -> Tensor:
        """Visible means of n model samples: the persistent chains under PCD, else fresh chains run
        ``gibbs_steps`` steps from the visible biases' base rate."""
        if self.hparams.persistent and bool(self.chains_ready):
            return self.rbm.v_mean(self.rbm.sample_h(self.chains[:n])[1])
        v = torch.bernoulli(torch.sigmoid(self.rbm.b).expand(n, -1)) if self.hparams.visible == "bernoulli" \
            else self.rbm.b.expand(n, -1) + torch.randn(n, self.rbm.n_visible, device=self.device)
        v = self.rbm.gibbs(v, gibbs_steps)
        return self.rbm.v_mean(self.rbm.sample_h(v)[1])

    def on_train_start(self) -> None:
        # Read once here, not per step: a tensor in an `if` would sync the device every batch.
        self._chains_started = bool(self.chains_ready)
        self._cd_step = compiled(self.rbm.cd_step, self.hparams.get("compile", False))
        self._recon_every = max(1, self.trainer.log_every_n_steps)
        # The CD gradient in closed form straight into .grad: the numbers loss.backward() gives, without the
        # autograd engine's pass (2-3 % of an MNIST CD-1 step on a CPU core). Only where nothing else needs that
        # pass: one process (DDP's all-reduce hooks into it) and full precision (a gradient scaler scales it).
        self._closed_form = self.trainer.world_size == 1 and self.trainer.precision in ("32-true", "64-true")
        # Hinton's init of the visible biases needs the data; only on a fresh run, never on resume.
        dm = getattr(self.trainer, "datamodule", None)
        if self.global_step == 0 and getattr(dm, "x_train", None) is not None:
            self.rbm.init_visible_bias(dm.x_train.mean(0))

    def on_train_epoch_start(self) -> None:
        self._train_metrics.reset()
        self._recon_metrics.reset()

    def update_loss(self, batch: Any) -> Tensor:
        """One CD update's objective (its backward is the CD gradient); SeveralUpdatesPerStep makes the update."""
        v = inputs_of(batch)
        chains = self.chains if self.hparams.persistent else None
        if chains is not None and not self._chains_started:
            # Start the chains at data (the batch repeated if it is smaller than the chain count).
            start = v.repeat(-(-len(chains) // len(v)), 1)[: len(chains)]
            chains.copy_(start.bernoulli() if self.hparams.visible == "bernoulli" else start)
            self.chains_ready.fill_(True)
            self._chains_started = True
        # One fused CD step (unsupnn.nn.rbm.RBM.cd_step): each matrix product once, the gradient in closed form.
        # PCD's reconstruction of the data is there for the metric alone (a product and a random draw):
        # made every log_every_n_steps updates, whose mean train/recon then is. CD-k's comes with its chain.
        reconstruct = chains is None or self.global_step % self._recon_every == 0
        step = (self._cd_step or self.rbm.cd_step)(v, self.hparams.k, chains, gibbs_dtype=self._gibbs_dtype,
                                                   reconstruct=reconstruct)
        if chains is not None:
            self.chains.copy_(step.v_model)
        self._step = step
        self._train_metrics.add({"train/cd_loss": step.loss}, len(v))
        if step.recon is not None:
            with torch.no_grad():
                recon = F.mse_loss(step.recon, v)  # mean squared error of the one-step reconstruction
            self._recon_metrics.add({"train/recon": recon}, len(v))
        return step.loss

    def backward_update(self, loss: Tensor) -> None:
        if not self._closed_form:
            return super().backward_update(loss)
        for p, g in zip((self.rbm.W, self.rbm.b, self.rbm.c), self._step.gradients()):
            p.grad = g

    def on_train_epoch_end(self) -> None:
        self._step = None  # nothing held from one epoch to the next
        self._train_metrics.log(self)
        self._recon_metrics.log(self)

    def on_validation_epoch_start(self) -> None:
        self._val_metrics.reset()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        v = inputs_of(batch)
        self._val_metrics.add({
            "val/recon": F.mse_loss(self.rbm.reconstruct(v), v),
            "val/pll": pseudo_log_likelihood(self.rbm, v),
            "val/free_energy": self.rbm.free_energy(v).mean(),
        }, len(v))

    def on_validation_epoch_end(self) -> None:
        self._val_metrics.log(self)
        dm = getattr(self.trainer, "datamodule", None)
        x_train, x_val = getattr(dm, "x_train", None), getattr(dm, "x_val", None)
        if x_train is None or x_val is None or not len(x_val) or self.trainer.sanity_checking:
            return
        n = self.hparams.fe_gap_examples
        # A fixed training subset (the first n rows) against as many validation rows.
        gap = free_energy_gap(self.rbm, x_train[:n].to(self.device), x_val[:n].to(self.device))
        log_epoch(self, "val/fe_gap", gap)

    def configure_optimizers(self):
        hp = self.hparams
        return build_optimizer(hp.optimizer or DEFAULT_OPTIMIZER, self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
