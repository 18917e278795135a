"""LightningModule around unsupnn.nn.RBM: CD-k and persistent CD with any torch optimizer."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from unsupnn.lit.common import build_optimizer, inputs_of, log_epoch
from unsupnn.nn.rbm import RBM, free_energy_gap, pseudo_log_likelihood

DEFAULT_OPTIMIZER = {"_target_": "torch.optim.SGD", "_partial_": True, "momentum": 0.9}


class LitRBM(pl.LightningModule):
    """Trains an RBM by CD-k (``persistent=False``) or PCD-k (``persistent=True``, ``n_chains`` chains).

    Every argument is a plain value (checkpoints load with ``torch.load(weights_only=True)``);
    ``optimizer`` is a Hydra ``_partial_`` config that receives the parameters, ``lr`` and ``weight_decay``.
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
    ):
        super().__init__()
        self.save_hyperparameters()
        if k < 1:
            raise ValueError(f"model.k={k}: contrastive divergence needs at least one Gibbs step")
        self.rbm = RBM(n_visible=n_features, n_hidden=n_hidden, visible=visible)
        # Persistent chains live in a buffer so checkpoints carry them; `chains_ready` marks them started.
        # Under DDP each process keeps its own chains: configs/trainer/ddp.yaml turns off buffer broadcasting.
        self.register_buffer("chains", torch.zeros(n_chains if persistent else 0, n_features))
        self.register_buffer("chains_ready", torch.tensor(False))

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
        # Hinton's init of the visible biases needs the data; only on a fresh run, never on resume.
        dm = getattr(self.trainer, "datamodule", None)
        if self.global_step == 0 and getattr(dm, "x_train", None) is not None:
            self.rbm.init_visible_bias(dm.x_train.mean(0))

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        v = inputs_of(batch)
        chains = self.chains if self.hparams.persistent else None
        if chains is not None and not self._chains_started:
            # Start the chains at data (the batch repeated if it is smaller than the chain count).
            start = v.repeat(-(-len(chains) // len(v)), 1)[: len(chains)]
            chains.copy_(start.bernoulli() if self.hparams.visible == "bernoulli" else start)
            self.chains_ready.fill_(True)
            self._chains_started = True
        v_model, recon = self.rbm.negative_phase(v, self.hparams.k, chains)
        if chains is not None:
            self.chains.copy_(v_model)
        loss = self.rbm.contrastive_divergence(v, v_model)
        log_epoch(self, "train/cd_loss", loss)
        log_epoch(self, "train/recon", torch.mean((v - recon) ** 2), prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        v = inputs_of(batch)
        log_epoch(self, "val/recon", torch.mean((v - self.rbm.reconstruct(v)) ** 2), prog_bar=True)
        log_epoch(self, "val/pll", pseudo_log_likelihood(self.rbm, v))
        log_epoch(self, "val/free_energy", self.rbm.free_energy(v).mean())

    def on_validation_epoch_end(self) -> None:
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
