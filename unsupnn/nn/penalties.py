"""Regularisers of overcomplete autoencoders: sparsity of the code and contraction of the encoder.

All are per-example quantities averaged over the batch, on the same scale as a reconstruction loss
summed over features, so a weight (beta, lambda) means the same thing at any batch size.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def kl_sparsity(code: Tensor, rho: float, eps: float = 1e-6) -> Tensor:
    """sum_j KL(rho || rho_hat_j), rho_hat_j the mean activation of code unit j over the batch.

    KL(rho || q) = rho log(rho / q) + (1 - rho) log((1 - rho) / (1 - q)): Ng's sparse autoencoder
    (CS294A notes, 2011). The code must be in (0, 1) (sigmoid units); the clamp keeps the logarithms
    finite when a unit saturates.
    """
    rho_hat = code.mean(0).clamp(eps, 1 - eps)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def l1_sparsity(code: Tensor) -> Tensor:
    """Mean over the batch of ||h||_1, the L1 norm of each example's code."""
    return code.abs().sum(-1).mean()


def sigmoid_contractive_penalty(code: Tensor, weight: Tensor) -> Tensor:
    """Mean ||J_f(x)||_F^2 for one sigmoid layer h = sigmoid(W x + c), in closed form.

    dh_j / dx_i = h_j (1 - h_j) W_ji, so ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2
    (Rifai et al., ICML 2011, eq. 5): one batch matrix product, no Jacobian built.
    """
    return ((code * (1 - code)) ** 2 @ (weight**2).sum(1)).mean()


def jacobian_penalty(encode: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Mean ||J_f(x)||_F^2 of any encoder ``f``, by automatic differentiation.

    Builds each example's (code x input) Jacobian with reverse mode, vectorised over the batch; the result
    stays differentiable with respect to the encoder's parameters, so it can be trained through.
    """
    jac = torch.func.vmap(torch.func.jacrev(encode))(x)
    return jac.pow(2).sum((1, 2)).mean()
