"""Log-likelihood of an RBM by annealed importance sampling, logged every N epochs."""

from __future__ import annotations

import torch

from unsupnn.callbacks.base import EveryNEpochs
from unsupnn.nn.ais import ais_log_likelihood, base_rate_bias


class AISLogLikelihood(EveryNEpochs):
    """``val/ais_ll`` (average validation log-likelihood in nats) and ``val/ais_log_z`` with its spread.

    Only for modules with a Bernoulli ``rbm``; the base-rate model is fitted to the training data. Its
    cost is ``n_betas`` Gibbs sweeps over ``n_runs`` chains, so it runs every ``every_n_epochs`` epochs.
    """

    def __init__(self, *, every_n_epochs: int = 10, n_runs: int = 100, n_betas: int = 1000, max_examples: int = 10_000, seed: int = 0):
        super().__init__(every_n_epochs=every_n_epochs)
        self.n_runs, self.n_betas = n_runs, n_betas
        self.max_examples, self.seed = max_examples, seed

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        # Scalars go through pl_module.log, so this runs with any logger (not only TensorBoard).
        rbm, dm = getattr(pl_module, "rbm", None), trainer.datamodule
        if rbm is None or rbm.visible != "bernoulli" or not len(getattr(dm, "x_val", ())) or not self.due(trainer):
            return
        device = pl_module.device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        ll, result = ais_log_likelihood(
            rbm,
            dm.x_val[: self.max_examples].to(device),
            base_bias=base_rate_bias(dm.x_train[: self.max_examples].to(device)),
            n_runs=self.n_runs,
            n_betas=self.n_betas,
            generator=generator,
        )
        pl_module.log("val/ais_ll", ll)
        pl_module.log("val/ais_log_z", result.log_z)
        pl_module.log("val/ais_log_z_spread", result.log_z_high - result.log_z)
