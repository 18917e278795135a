"""Autoencoders: undercomplete, sparse, contractive and denoising, as options of one module.

    x~ = corrupt(x)                                   denoising only (Vincent et al., 2010); else x~ = x
    h  = f(x~) = s_c(W_L s(... s(W_1 x~ + c_1) ...) + c_L)          encoder, widths hidden_dims
    x^ = g(h)  = s_o(V_1 s(... s(V_L h + b_L) ...) + b_1)           decoder, the mirror image
    J  = L(x, x^) + beta * S(h) + lambda * ||df/dx (x~)||_F^2       the objective

V_l = W_l^T when ``tied``. L is binary cross-entropy (data in [0, 1], sigmoid output, computed from the
logits for stability) or squared error, summed over features and averaged over examples. S is the KL
sparsity of Ng's notes or an L1 norm of the code; the last term is the contractive penalty of Rifai et al.
(2011). The encoder is exactly ``unsupnn.build_encoder(encoder_spec())``, so what is exported is what
was trained.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unsupnn.io import build_encoder
from unsupnn.nn.noise import check_corruption, corrupt
from unsupnn.nn.penalties import jacobian_penalty, kl_sparsity, l1_sparsity, sigmoid_contractive_penalty

LOSSES = ("bce", "mse")
SPARSITIES = ("none", "kl", "l1")


class Objective(NamedTuple):
    loss: Tensor  # the training objective J
    recon_loss: Tensor  # L(x, x^) alone
    penalties: dict[str, Tensor]  # unweighted: "sparsity", "contractive" (only those switched on)
    code: Tensor  # h
    recon: Tensor  # x^


class Autoencoder(nn.Module):
    """Encoder widths ``hidden_dims`` (the last is the code), mirrored by the decoder.

    ``activation`` for hidden layers, ``code_activation`` for the code (default: ``activation``),
    ``output_activation`` for the reconstruction (default: sigmoid for ``loss="bce"``, identity for "mse").
    Penalties: ``sparsity`` ("kl" to ``rho``, or "l1") weighted by ``beta``; the contractive penalty
    weighted by ``contractive_weight``. Denoising: ``corruption`` at ``corruption_level``. A code at least as
    wide as the input with none of these is refused unless ``allow_identity``.
    """

    def __init__(
        self,
        *,
        n_features: int,
        hidden_dims: list[int],
        activation: str = "sigmoid",
        code_activation: str | None = None,
        output_activation: str | None = None,
        loss: str = "bce",
        tied: bool = False,
        sparsity: str = "none",
        rho: float = 0.05,
        beta: float = 0.0,
        contractive_weight: float = 0.0,
        corruption: str = "none",
        corruption_level: float = 0.0,
        allow_identity: bool = False,
    ):
        super().__init__()
        dims = [int(d) for d in hidden_dims]
        if n_features < 1 or not dims or min(dims) < 1:
            raise ValueError(
                f"an autoencoder needs n_features >= 1 and a non-empty hidden_dims of widths >= 1, got {n_features} and {dims}"
            )
        if loss not in LOSSES:
            raise ValueError(f"model.loss={loss!r}; use 'bce' (data in [0, 1]) or 'mse' (any real data)")
        code_activation = code_activation or activation
        output_activation = output_activation or ("sigmoid" if loss == "bce" else "identity")
        if loss == "bce" and output_activation != "sigmoid":
            raise ValueError(
                f"model.loss=bce needs model.output_activation=sigmoid (probabilities), got {output_activation!r}; "
                "use model.loss=mse for other outputs"
            )
        if sparsity not in SPARSITIES:
            raise ValueError(f"model.sparsity={sparsity!r}; use one of {SPARSITIES}")
        if sparsity == "kl" and (code_activation != "sigmoid" or not 0 < rho < 1):
            raise ValueError(
                f"model.sparsity=kl compares mean code activations with model.rho={rho}: it needs a sigmoid code "
                f"(model.code_activation={code_activation!r}) and 0 < rho < 1; or use model.sparsity=l1"
            )
        if beta < 0 or contractive_weight < 0:
            raise ValueError(
                f"penalty weights must be >= 0, got model.beta={beta} and model.contractive_weight={contractive_weight}"
            )
        check_corruption(corruption, corruption_level)
        self.corruption, self.corruption_level = corruption, corruption_level
        penalised = (sparsity != "none" and beta > 0) or contractive_weight > 0
        if min(dims) >= n_features and not (penalised or self.denoising or allow_identity):
            raise ValueError(
                f"model.hidden_dims={dims} never narrows below the {n_features} input features and nothing else constrains "
                "the code, so the autoencoder can learn the identity and no useful features. Narrow the bottleneck "
                f"(a width below {n_features}), or add a penalty (model.sparsity=kl model.beta=3, or "
                "model.contractive_weight=0.1), or a corruption (model.corruption=mask model.corruption_level=0.25); "
                "model.allow_identity=true trains it anyway"
            )
        # Everything needed to rebuild this module: Lightning checkpoints store it beside the weights.
        self.config = dict(
            n_features=n_features, hidden_dims=dims, activation=activation, code_activation=code_activation,
            output_activation=output_activation, loss=loss, tied=tied, sparsity=sparsity, rho=rho, beta=beta,
            contractive_weight=contractive_weight, corruption=corruption, corruption_level=corruption_level,
            allow_identity=allow_identity,
        )
        self.n_features, self.hidden_dims, self.tied, self.loss = n_features, dims, tied, loss
        self.sparsity, self.rho, self.beta, self.contractive_weight = sparsity, rho, beta, contractive_weight
        self.encoder = build_encoder(self.encoder_spec())
        # The decoder is the same kind of Linear/activation stack, built once for its initialisation and its
        # activation modules; with tied weights only its biases are kept and the weights are W_l^T.
        decoder = build_encoder(self._decoder_spec())
        self.decoder_weight = nn.ParameterList([] if tied else [lin.weight for lin in decoder[0::2]])
        self.decoder_bias = nn.ParameterList([lin.bias for lin in decoder[0::2]])
        self.decoder_act = nn.ModuleList(decoder[1::2])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Autoencoder:
        """Rebuild from a mapping with the keys of ``config``, among others (a Lightning module's hparams)."""
        return cls(**{k: config[k] for k in inspect.signature(cls).parameters if k in config})

    def _layers(self, widths: list[int], hidden: str, last: str) -> list[dict]:
        spec = []
        for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
            act = last if i == len(widths) - 2 else hidden
            spec += [{"kind": "linear", "in_features": n_in, "out_features": n_out}, {"kind": act}]
        return spec

    @property
    def denoising(self) -> bool:
        return self.corruption != "none" and self.corruption_level > 0

    def encoder_spec(self) -> list[dict]:
        cfg = self.config
        return self._layers([self.n_features, *self.hidden_dims], cfg["activation"], cfg["code_activation"])

    def _decoder_spec(self) -> list[dict]:
        cfg = self.config
        return self._layers([*reversed(self.hidden_dims), self.n_features], cfg["activation"], cfg["output_activation"])

    def encoder_state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach() for k, v in self.encoder.state_dict().items()}

    def check_input(self, x: Tensor, what: str = "the data") -> None:
        """Refuse data the reconstruction loss cannot model, with the fix."""
        if x.shape[-1] != self.n_features:
            raise ValueError(f"{what} has {x.shape[-1]} features but the autoencoder takes {self.n_features}")
        if self.loss == "bce" and x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{what} has values in [{float(x.min()):.3g}, {float(x.max()):.3g}] but model.loss=bce (binary "
                "cross-entropy) needs [0, 1]: scale the data to [0, 1] (min-max) or use model.loss=mse"
            )

    # the two halves -----------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decoder_weights(self) -> list[Tensor]:
        """V_L, ..., V_1 in the order the decoder applies them."""
        if self.tied:
            return [lin.weight.t() for lin in reversed(self.encoder[0::2])]
        return list(self.decoder_weight)

    def decode_preactivation(self, z: Tensor) -> Tensor:
        """The output layer's input to its activation: the logits of a sigmoid output."""
        *hidden, (v_out, b_out) = zip(self.decoder_weights(), self.decoder_bias)
        for (v, b), act in zip(hidden, self.decoder_act):
            z = act(F.linear(z, v, b))
        return F.linear(z, v_out, b_out)

    def output(self, a: Tensor) -> Tensor:
        return self.decoder_act[-1](a)

    def decode(self, z: Tensor) -> Tensor:
        return self.output(self.decode_preactivation(z))

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction g(f(x)), without corruption."""
        return self.decode(self.encode(x))

    # the objective ------------------------------------------------------------------------------
    def reconstruction_loss(self, a: Tensor, x: Tensor) -> Tensor:
        """L(x, x^) from the output pre-activation ``a``, summed over features, averaged over examples."""
        if self.loss == "bce":
            return F.binary_cross_entropy_with_logits(a, x, reduction="none").sum(-1).mean()
        return (self.output(a) - x).pow(2).sum(-1).mean()

    def contractive_penalty(self, x: Tensor, code: Tensor | None = None) -> Tensor:
        """Mean ||df/dx||_F^2 at ``x``: closed form for one sigmoid layer, automatic differentiation otherwise."""
        if len(self.hidden_dims) == 1 and self.config["code_activation"] == "sigmoid":
            return sigmoid_contractive_penalty(self.encode(x) if code is None else code, self.encoder[0].weight)
        return jacobian_penalty(self.encode, x)

    def penalties(self, x: Tensor, code: Tensor) -> dict[str, Tensor]:
        """The switched-on penalties (unweighted) of the code ``code`` = f(``x``)."""
        out = {}
        if self.sparsity != "none":
            out["sparsity"] = kl_sparsity(code, self.rho) if self.sparsity == "kl" else l1_sparsity(code)
        if self.contractive_weight > 0:
            out["contractive"] = self.contractive_penalty(x, code)
        return out

    def objective(self, x: Tensor, generator: torch.Generator | None = None) -> Objective:
        """J on a batch of clean examples ``x``, corrupting them first when denoising (fresh noise each call)."""
        x_in = corrupt(x, self.corruption, self.corruption_level, generator)
        code = self.encode(x_in)
        a = self.decode_preactivation(code)
        recon_loss = self.reconstruction_loss(a, x)
        penalties = self.penalties(x_in, code)
        loss = recon_loss
        if "sparsity" in penalties:
            loss = loss + self.beta * penalties["sparsity"]
        if "contractive" in penalties:
            loss = loss + self.contractive_weight * penalties["contractive"]
        return Objective(loss, recon_loss, penalties, code, self.output(a))
