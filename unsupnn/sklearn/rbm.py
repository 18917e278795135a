"""RBMTransformer: a drop-in for scikit-learn's BernoulliRBM, trained by unsupnn's RBM code."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import Tensor

from unsupnn.nn.rbm import RBM, pseudo_log_likelihood_samples
from unsupnn.sklearn.base import TorchTransformer, check_number


class RBMTransformer(TorchTransformer):
    """Bernoulli RBM features (hidden-unit probabilities), fitted by CD-k or persistent CD.

    Parameters shared with ``sklearn.neural_network.BernoulliRBM`` mean the same: ``n_components``
    hidden units, ``learning_rate`` of plain SGD on mini-batch means, ``batch_size``, ``n_iter`` passes
    over the data, ``random_state``, ``verbose``. Added: ``k`` Gibbs steps per update, ``persistent``
    (PCD with ``batch_size`` chains, as BernoulliRBM, instead of CD started at the data) and ``device``.

    Differences from BernoulliRBM, chosen because they classify better on scikit-learn's digits protocol:
    CD-1 by default (``persistent=False``), visible biases initialised to log(p / (1 - p)) of the data's
    mean (Hinton's guide), the data reshuffled every pass. Data should lie in [0, 1]; other values are
    used (as BernoulliRBM does) with a warning. ``partial_fit`` makes one pass over X in mini-batches
    (BernoulliRBM takes one step on all of X; the two agree for ``len(X) <= batch_size``).

    Fitted attributes: ``model_`` (the ``unsupnn.nn.RBM``), ``components_`` (n_components, n_features),
    ``intercept_hidden_``, ``intercept_visible_``, ``chains_`` (PCD's visible chain states),
    ``n_features_in_``, ``feature_names_in_``.
    """

    def __init__(
        self,
        n_components: int = 256,
        *,
        learning_rate: float = 0.1,
        batch_size: int = 10,
        n_iter: int = 10,
        k: int = 1,
        persistent: bool = False,
        random_state=None,
        verbose: int = 0,
        device: str = "cpu",
    ):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.k = k
        self.persistent = persistent
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # the training hooks ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        super()._check_params()
        check_number("n_components", self.n_components, low=1, integer=True)
        check_number("k", self.k, low=1, integer=True)

    def _build(self, x: Tensor) -> RBM:
        rbm = RBM(n_visible=x.shape[1], n_hidden=self.n_components)
        rbm.init_visible_bias(x.mean(0))
        return rbm

    def _make_optimizer(self, model: RBM) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.learning_rate)

    def _loss(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        chains = None
        if self.persistent:
            if getattr(self, "chains_", None) is None:
                # Chains start one Gibbs step from the first mini-batch: valid binary states for any data.
                self.chains_ = self.model_.gibbs(batch, 1, generator)
            chains = self.chains_
        v_model, _ = self.model_.negative_phase(batch, self.k, chains, generator)
        if self.persistent:
            self.chains_ = v_model
        return self.model_.contrastive_divergence(batch, v_model)

    def _features(self, x: Tensor) -> Tensor:
        return self.model_.transform(x)

    def _decode(self, h: Tensor) -> Tensor:
        return self.model_.v_mean(h)  # the mean-field decoding E[v | h]

    def _check_training_data(self, x: Tensor, model: RBM) -> None:
        # Warn, not refuse: BernoulliRBM accepts any real data, and a drop-in must too.
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 1:
            warnings.warn(
                f"X has values in [{low:.3g}, {high:.3g}] but the RBM's Bernoulli visible units model [0, 1]; "
                "scale X first (sklearn.preprocessing.MinMaxScaler in the Pipeline)",
                UserWarning,
                stacklevel=4,
            )

    def _progress(self, x: Tensor, generator: torch.Generator) -> str:
        with torch.no_grad():
            pll = pseudo_log_likelihood_samples(self.model_, x, generator).mean() * x.shape[1]
        return f"pseudo-likelihood = {float(pll):.2f}"

    # what BernoulliRBM offers besides transform ------------------------------------------------------
    def score_samples(self, X) -> np.ndarray:
        """Pseudo-log-likelihood of each row, estimated by flipping one random unit (as BernoulliRBM).

        Seeded by ``random_state``, so repeated calls on the same X agree.
        """
        x, dtype = self._input(X)
        generator = self._generator(check_random_state(self.random_state))
        with torch.no_grad():
            return self._output(pseudo_log_likelihood_samples(self.model_, x, generator) * x.shape[1], dtype)

    def gibbs(self, X, k: int = 1) -> np.ndarray:
        """``k`` steps of block Gibbs sampling from each row of X; the sampled visible states."""
        check_number("k", k, low=1, integer=True)
        x, dtype = self._input(X)
        return self._output(self.model_.gibbs(x, k, self._generator()), dtype)

    # BernoulliRBM's fitted attributes, read from the model --------------------------------------------
    @property
    def components_(self) -> np.ndarray:
        return self.model_.W.detach().cpu().numpy()

    @property
    def intercept_hidden_(self) -> np.ndarray:
        return self.model_.c.detach().cpu().numpy()

    @property
    def intercept_visible_(self) -> np.ndarray:
        return self.model_.b.detach().cpu().numpy()

    @property
    def _n_features_out(self) -> int:
        return self.model_.n_hidden
