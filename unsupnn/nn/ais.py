"""Annealed importance sampling of a Bernoulli RBM's partition function (Salakhutdinov & Murray, 2008).

The path runs from a base-rate model A (no weights, visible biases b_A fitted to the data, Z_A known in
closed form) to the RBM B through the intermediate distributions

    p*_k(v) = exp((1 - beta_k) b_A.v + beta_k b.v) * prod_j (1 + exp(beta_k (c_j + W_j.v)))

with 0 = beta_0 < ... < beta_K = 1. Each run starts with v ~ p_A, multiplies its importance weight by
p*_k(v) / p*_{k-1}(v) and moves v by one Gibbs step that leaves p_k invariant. Then

    Z_B / Z_A ~= mean over runs of w,   log Z_0 = sum_i softplus(b_A,i) + n_hidden log 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from unsupnn.nn.noise import bernoulli
from unsupnn.nn.rbm import RBM, softplus


@dataclass(frozen=True)
class AISResult:
    log_z: float  # the estimate of log Z
    log_z_low: float  # log(mean w - 3 std(w) / sqrt(runs)) + log Z_0, the conventional spread (-inf if <= 0)
    log_z_high: float  # log(mean w + 3 std(w) / sqrt(runs)) + log Z_0
    n_runs: int
    n_betas: int


def beta_schedule(n_betas: int) -> Tensor:
    """Inverse temperatures spaced as in Salakhutdinov & Murray: 500 / 4,000 / 10,000 of their 14,500
    intermediate distributions in [0, 0.5), [0.5, 0.9) and [0.9, 1], scaled to ``n_betas`` in all."""
    if n_betas < 3:
        raise ValueError(f"n_betas={n_betas}: AIS needs at least 3 inverse temperatures")
    n1, n2 = max(1, round(n_betas * 500 / 14500)), max(1, round(n_betas * 4000 / 14500))
    n3 = n_betas - n1 - n2
    return torch.cat([
        torch.linspace(0.0, 0.5, n1 + 1)[:-1],
        torch.linspace(0.5, 0.9, n2 + 1)[:-1],
        torch.linspace(0.9, 1.0, n3),
    ]).double()


def base_rate_bias(v: Tensor, smoothing: float = 0.05) -> Tensor:
    """Visible biases of the base-rate model: log odds of the (smoothed) mean activation of the data."""
    p = (v.double().mean(0) + smoothing) / (1 + 2 * smoothing)
    return torch.log(p) - torch.log1p(-p)


@torch.no_grad()
def ais_log_partition(
    rbm: RBM,
    *,
    base_bias: Tensor | None = None,
    n_runs: int = 100,
    n_betas: int = 10_000,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Estimate log Z of a Bernoulli RBM; ``base_bias`` from ``base_rate_bias(training data)``."""
    if rbm.visible != "bernoulli":
        raise ValueError("AIS here is written for Bernoulli visible units (model.visible=bernoulli)")
    # Products in the model's precision, the importance weights in float64: each step adds a small
    # difference of two large log-probabilities, and 10^4 of them must not drift.
    W, b, c = rbm.W.detach(), rbm.b.detach(), rbm.c.detach()
    b_a = torch.zeros_like(b) if base_bias is None else base_bias.to(b)
    betas = beta_schedule(n_betas).to(W.device)
    bias_gap = (b - b_a).double()

    v = bernoulli(torch.sigmoid(b_a).expand(n_runs, -1).contiguous(), generator)
    log_w = torch.zeros(n_runs, dtype=torch.float64, device=W.device)
    for k in range(1, len(betas)):
        act = F.linear(v, W, c).double()
        # log p*_k(v) - log p*_{k-1}(v), written as one difference
        log_w += (betas[k] - betas[k - 1]) * (v.double() @ bias_gap)
        log_w += (softplus(betas[k] * act) - softplus(betas[k - 1] * act)).sum(-1)
        if k < len(betas) - 1:  # a Gibbs step that leaves p_k invariant
            beta = float(betas[k])
            h = bernoulli(torch.sigmoid(beta * act).to(W.dtype), generator)
            v = bernoulli(torch.sigmoid((1 - beta) * b_a + beta * (b + h @ W)), generator)

    log_z0 = float(F.softplus(b_a.double()).sum()) + rbm.n_hidden * math.log(2.0)
    log_mean_w = float(torch.logsumexp(log_w, 0)) - math.log(n_runs)
    # The spread on the linear scale, relative to the largest weight to stay finite.
    w = torch.exp(log_w - log_w.max())
    mean = float(w.mean())
    sem = float(w.std()) / math.sqrt(n_runs) if n_runs > 1 else 0.0
    shift = float(log_w.max()) + log_z0
    low = math.log(mean - 3 * sem) + shift if mean > 3 * sem else -math.inf
    return AISResult(log_mean_w + log_z0, low, math.log(mean + 3 * sem) + shift, n_runs, n_betas)


def ais_log_likelihood(rbm: RBM, v: Tensor, **ais_kwargs) -> tuple[float, AISResult]:
    """Average log p(v) in nats, with log Z estimated by AIS: mean(-F(v)) - log Z."""
    result = ais_log_partition(rbm, **ais_kwargs)
    with torch.no_grad():
        mean_neg_f = float(-rbm.free_energy(v).double().mean())
    return mean_neg_f - result.log_z, result
