"""AutoencoderTransformer: unsupnn's autoencoders (plain, sparse, contractive, denoising) as a transformer."""

from __future__ import annotations

import torch
from torch import Tensor

from unsupnn.nn.autoencoder import Autoencoder
from unsupnn.sklearn.base import TorchTransformer


class AutoencoderTransformer(TorchTransformer):
    """The code of an autoencoder (``unsupnn.nn.Autoencoder``) as features, trained with Adam.

    The model's options keep the names they have everywhere in unsupnn (``model.<name>`` on the command
    line): ``hidden_dims`` (encoder widths, the last is the code; the decoder mirrors them),
    ``activation``, ``code_activation``, ``loss`` (``"mse"``: any real data; ``"bce"``: data in [0, 1],
    e.g. min-max scaled pixels), ``tied``; noise ``corruption`` (``"mask"``, ``"gaussian"``,
    ``"salt_pepper"``) at ``corruption_level`` (a denoising autoencoder); penalties ``sparsity``
    (``"kl"`` towards mean activation ``rho``, or ``"l1"``) weighted by ``beta``, and
    ``contractive_weight``; ``allow_identity``. Training: ``learning_rate`` (Adam), ``batch_size``,
    ``n_iter`` passes, ``random_state``, ``verbose``, ``device``.

    ``transform`` is the encoder, ``inverse_transform`` the decoder. Fitted attributes: ``model_``,
    ``optimizer_``, ``n_features_in_``, ``feature_names_in_``.
    """

    def __init__(
        self,
        hidden_dims: tuple[int, ...] = (32,),
        *,
        activation: str = "sigmoid",
        code_activation: str | None = None,
        loss: str = "mse",
        tied: bool = False,
        corruption: str = "none",
        corruption_level: float = 0.0,
        sparsity: str = "none",
        rho: float = 0.05,
        beta: float = 0.0,
        contractive_weight: float = 0.0,
        allow_identity: bool = False,
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        n_iter: int = 20,
        random_state=None,
        verbose: int = 0,
        device: str = "cpu",
    ):
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.tied = tied
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.sparsity = sparsity
        self.rho = rho
        self.beta = beta
        self.contractive_weight = contractive_weight
        self.allow_identity = allow_identity
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    def _build(self, x: Tensor) -> Autoencoder:
        # The estimator's parameters are the model's options under the same names; from_config picks them.
        hidden_dims = [self.hidden_dims] if isinstance(self.hidden_dims, int) else list(self.hidden_dims)
        return Autoencoder.from_config({**self.get_params(), "n_features": x.shape[1], "hidden_dims": hidden_dims})

    def _make_optimizer(self, model: Autoencoder) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.learning_rate)

    def _loss(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        return self.model_.objective(batch, generator).loss

    def _features(self, x: Tensor) -> Tensor:
        return self.model_.encode(x)

    def _decode(self, code: Tensor) -> Tensor:
        return self.model_.decode(code)

    @property
    def _n_features_out(self) -> int:
        return self.model_.hidden_dims[-1]
