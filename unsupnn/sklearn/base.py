"""What the scikit-learn transformers share: validation, seeding, the mini-batch loop, devices.

The models and their losses are the ones in unsupnn.nn, the code the Lightning modules train; this file
holds only the scikit-learn protocol around them and a plain torch training loop (no Lightning, so
``import unsupnn.sklearn`` stays as light as scikit-learn itself).
"""

from __future__ import annotations

import numbers
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import Tensor, nn

_SEED_BOUND = 2**31 - 1


def check_number(name: str, value, *, low: float, integer: bool = False, strict: bool = False) -> None:
    """Refuse a hyper-parameter of the wrong type or below its bound, naming both."""
    kind = numbers.Integral if integer else numbers.Real
    if not isinstance(value, kind) or isinstance(value, bool) or (value <= low if strict else value < low):
        need = f"{'an integer' if integer else 'a number'} {'>' if strict else '>='} {low}"
        raise ValueError(f"{name}={value!r}; it must be {need}")


class TorchTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A scikit-learn transformer around one model of unsupnn.nn, trained by mini-batch gradient steps.

    Subclasses build the model (``_build``), its optimizer (``_make_optimizer``), the loss of one mini-batch
    (``_loss``) and the feature map (``_features``). Fitted state: ``model_`` (the plain torch model,
    usable directly), ``optimizer_`` (kept, so partial_fit continues optimizers with state such as
    Adam's moments) and ``random_state_``. The model's initialisation and every pass over the data
    draw their seeds from ``random_state_`` in turn, so a fixed ``random_state`` gives identical fits,
    and ``fit`` with ``n_iter=n`` equals ``n`` calls of ``partial_fit``.
    """

    # subclass hooks -------------------------------------------------------------------------------
    def _check_params(self) -> None:
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("n_iter", self.n_iter, low=0, integer=True)
        check_number("learning_rate", self.learning_rate, low=0, strict=True)
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={self.device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:0'") from None

    def _build(self, x: Tensor) -> nn.Module:
        raise NotImplementedError

    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        raise NotImplementedError

    def _loss(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def _features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _decode(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def _check_training_data(self, x: Tensor, model: nn.Module) -> None:
        """Called on every training set before it is used, so data the model cannot fit are refused."""
        model.check_input(x, what="X")

    def _progress(self, x: Tensor, generator: torch.Generator) -> str:
        """The per-iteration line printed with ``verbose``."""
        with torch.no_grad():
            return f"loss = {float(self._loss(x, generator)):.4f}"

    # scikit-learn protocol ---------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit a fresh model for ``n_iter`` passes over X (y is ignored)."""
        # Start from scratch: fitted attributes end with "_" (scikit-learn's convention); other private
        # attributes belong to whoever set them (a Pipeline's callback context, for one).
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attr)
        self.random_state_ = check_random_state(self.random_state)
        return self._train(X, self.n_iter)

    def partial_fit(self, X, y=None):
        """One pass over X in mini-batches of ``batch_size``, continuing from the current state."""
        if not hasattr(self, "random_state_"):
            self.random_state_ = check_random_state(self.random_state)
        return self._train(X, 1)

    def transform(self, X) -> np.ndarray:
        """The learned features of X."""
        x, dtype = self._input(X)
        with torch.no_grad():
            return self._output(self._features(x), dtype)

    def inverse_transform(self, X) -> np.ndarray:
        """Features back to the input space: the RBM's E[v | h], the autoencoder's decoder."""
        check_is_fitted(self)
        features = check_array(X, dtype=[np.float64, np.float32])
        if features.shape[1] != self._n_features_out:
            raise ValueError(f"X has {features.shape[1]} columns but inverse_transform takes the "
                             f"{self._n_features_out} features that transform returns")
        with torch.no_grad():
            x = self._decode(self._tensor(features))
        return self._output(x, features.dtype)

    def encoder_spec(self) -> list[dict]:
        """The fitted encoder's architecture: ``unsupnn.save_encoder(transformer, path)`` writes it."""
        check_is_fitted(self)
        return self.model_.encoder_spec()

    def encoder_state_dict(self) -> dict[str, Tensor]:
        check_is_fitted(self)
        return self.model_.encoder_state_dict()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # the loop and the conversions ---------------------------------------------------------------------
    def _train(self, X, n_passes: int):
        first = not hasattr(self, "model_")
        if first:
            self._check_params()
        x, _ = self._input(X, reset=first)
        if first:
            with torch.random.fork_rng(devices=[]):  # seed the model's own initialisation, leave the global RNG alone
                torch.manual_seed(int(self.random_state_.randint(_SEED_BOUND)))
                model = self._build(x.cpu()).to(device=self._device, dtype=x.dtype)
            self._check_training_data(x, model)
            self.model_, self.optimizer_ = model, self._make_optimizer(model)
        else:
            self._check_training_data(x, self.model_)
        self.model_.train()
        for i in range(n_passes):
            start = time.perf_counter()
            generator = self._generator()
            order = torch.randperm(len(x), generator=generator, device=self._device)
            for begin in range(0, len(x), self.batch_size):
                loss = self._loss(x[order[begin : begin + self.batch_size]], generator)
                self.optimizer_.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer_.step()
            if self.verbose:
                print(f"[{type(self).__name__}] Iteration {i + 1}, {self._progress(x, generator)}, "
                      f"time = {time.perf_counter() - start:.2f}s")
        self.model_.eval()
        return self

    @property
    def _device(self) -> torch.device:
        return torch.device(self.device)

    def _generator(self, rng: np.random.RandomState | None = None) -> torch.Generator:
        """A torch generator on the device, seeded from ``rng`` (default: ``random_state_``)."""
        rng = self.random_state_ if rng is None else rng
        return torch.Generator(device=self._device).manual_seed(int(rng.randint(_SEED_BOUND)))

    def _input(self, X, *, reset: bool = False) -> tuple[Tensor, np.dtype]:
        """X validated as scikit-learn does (n_features_in_, feature names), as a tensor, and its dtype."""
        if not reset:
            check_is_fitted(self)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        return self._tensor(X), X.dtype

    def _tensor(self, a: np.ndarray) -> Tensor:
        """``a`` on the device, in the model's dtype; before there is a model, in float64 or float32 as ``a``
        is, so a model fitted on float64 data computes in float64 (as scikit-learn's estimators do)."""
        model = getattr(self, "model_", None)
        dtype = next(model.parameters()).dtype if model is not None else getattr(torch, a.dtype.name)
        return torch.tensor(a, dtype=dtype, device=self._device)

    @staticmethod
    def _output(t: Tensor, dtype: np.dtype) -> np.ndarray:
        return t.detach().cpu().numpy().astype(dtype, copy=False)
