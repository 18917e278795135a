"""Restricted Boltzmann Machine: energies, conditionals, Gibbs sampling, contrastive divergence.

Notation follows Hinton's "A Practical Guide to Training RBMs" (2010):
visible units v (n_visible), hidden units h (n_hidden), weights W (n_hidden x n_visible, the layout of
``nn.Linear`` so the encoder is literally ``Linear(W, c) -> Sigmoid``), visible bias b, hidden bias c.

    Bernoulli visible:  E(v, h) = -b.v - c.h - h.W v
    Gaussian visible:   E(v, h) = ||v - b||^2 / 2 - c.h - h.W v      (unit variance, standardised data)

    F(v) = -log sum_h exp(-E(v, h)) = -b.v - sum_j softplus(c_j + W_j.v)     (Bernoulli)
                                      ||v - b||^2 / 2 - sum_j softplus(...)    (Gaussian)

Training minimises  mean F(v_data) - mean F(v_model)  with v_model detached; its gradient is exactly the
CD update  -(<v h>_data - <v h>_model)  with hidden probabilities in both phases, so any torch optimizer
applies (SGD + momentum is the classic choice).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VISIBLE_TYPES = ("bernoulli", "gaussian")


class RBM(nn.Module):
    def __init__(self, *, n_visible: int, n_hidden: int, visible: str = "bernoulli"):
        super().__init__()
        if visible not in VISIBLE_TYPES:
            raise ValueError(f"visible={visible!r} is not a visible unit type; use one of {VISIBLE_TYPES}")
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"an RBM needs n_visible >= 1 and n_hidden >= 1, got {n_visible} and {n_hidden}")
        self.n_visible, self.n_hidden, self.visible = n_visible, n_hidden, visible
        # Practical guide, section 8: small random weights, zero hidden biases.
        self.W = nn.Parameter(torch.randn(n_hidden, n_visible) * 0.01)
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    def check_input(self, v: Tensor, what: str = "the data") -> None:
        """Refuse data that these visible units cannot model, with the fix."""
        if v.shape[-1] != self.n_visible:
            raise ValueError(f"{what} has {v.shape[-1]} features but the RBM has {self.n_visible} visible units")
        if self.visible == "bernoulli" and v.numel() and (v.min() < 0 or v.max() > 1):
            raise ValueError(
                f"{what} has values in [{float(v.min()):.3g}, {float(v.max()):.3g}] but Bernoulli visible units "
                "need [0, 1]: scale the data to [0, 1] (min-max) or use Gaussian visible units (model.visible=gaussian)"
            )

    @torch.no_grad()
    def init_visible_bias(self, v_mean: Tensor, eps: float = 1e-3) -> None:
        """Visible biases log(p / (1 - p)) of the data's mean activation p (guide, section 8.1)."""
        v_mean = v_mean.to(self.b)
        if self.visible == "bernoulli":
            self.b.copy_(torch.logit(v_mean.clamp(eps, 1 - eps)))
        else:
            self.b.copy_(v_mean)

    # conditionals -------------------------------------------------------------------------------
    def h_prob(self, v: Tensor) -> Tensor:
        """p(h_j = 1 | v) = sigmoid(c_j + W_j.v)."""
        return torch.sigmoid(F.linear(v, self.W, self.c))

    def v_mean(self, h: Tensor) -> Tensor:
        """E[v | h]: sigmoid(b + W^T h) for Bernoulli units, b + W^T h for Gaussian ones."""
        a = F.linear(h, self.W.t(), self.b)
        return torch.sigmoid(a) if self.visible == "bernoulli" else a

    def sample_h(self, v: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        p = self.h_prob(v)
        return p, torch.bernoulli(p, generator=generator)

    def sample_v(self, h: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        mean = self.v_mean(h)
        if self.visible == "bernoulli":
            return mean, torch.bernoulli(mean, generator=generator)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean, mean + noise

    @torch.no_grad()
    def gibbs(self, v: Tensor, k: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """k steps of block Gibbs sampling v -> h -> v, returning the sampled visible state."""
        return self.gibbs_chain(v, k, generator)[0]

    @torch.no_grad()
    def gibbs_chain(self, v: Tensor, k: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """k Gibbs steps from v; returns (v_k sampled, E[v_1 | h_0]).

        E[v_1 | h_0] is the one-step reconstruction from a sampled hidden state, the "reconstruction
        error" signal of the practical guide, obtained here at no extra cost.
        """
        if k < 1:
            raise ValueError(f"k={k}: contrastive divergence needs at least one Gibbs step (k >= 1)")
        recon = None
        for _ in range(k):
            _, h = self.sample_h(v, generator)
            mean, v = self.sample_v(h, generator)
            if recon is None:
                recon = mean
        return v, recon

    # energies -----------------------------------------------------------------------------------
    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) for a batch of joint states."""
        interaction = (F.linear(v, self.W) * h).sum(-1)
        hidden = h @ self.c
        if self.visible == "bernoulli":
            return -(v @ self.b) - hidden - interaction
        return 0.5 * ((v - self.b) ** 2).sum(-1) - hidden - interaction

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), hidden units summed out in closed form."""
        hidden = F.softplus(F.linear(v, self.W, self.c)).sum(-1)
        if self.visible == "bernoulli":
            return -(v @ self.b) - hidden
        return 0.5 * ((v - self.b) ** 2).sum(-1) - hidden

    # learning -----------------------------------------------------------------------------------
    def contrastive_divergence(self, v_data: Tensor, v_model: Tensor) -> Tensor:
        """The CD objective mean F(v_data) - mean F(v_model); its gradient is the CD update."""
        return self.free_energy(v_data).mean() - self.free_energy(v_model.detach()).mean()

    @torch.no_grad()
    def negative_phase(
        self, v_data: Tensor, k: int, chains: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Negative particles for CD-k (chains start at the data) or PCD-k (at the persistent `chains`).

        Returns (v_model, one-step reconstruction of v_data). For PCD the caller keeps v_model as the
        new chain state.
        """
        if chains is None:
            return self.gibbs_chain(v_data, k, generator)
        v_model = self.gibbs(chains, k, generator)
        recon = self.v_mean(self.sample_h(v_data, generator)[1])
        return v_model, recon

    # features -----------------------------------------------------------------------------------
    def transform(self, v: Tensor) -> Tensor:
        """Hidden-unit probabilities: the features the RBM hands to a classifier."""
        return self.h_prob(v)

    def reconstruct(self, v: Tensor) -> Tensor:
        """Mean-field reconstruction E[v | h = p(h | v)]."""
        return self.v_mean(self.h_prob(v))

    def encoder_spec(self) -> list[dict]:
        return [
            {"kind": "linear", "in_features": self.n_visible, "out_features": self.n_hidden},
            {"kind": "sigmoid"},
        ]

    def encoder_state_dict(self) -> dict[str, Tensor]:
        return {"0.weight": self.W.detach(), "0.bias": self.c.detach()}


def pseudo_log_likelihood_samples(rbm: RBM, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Stochastic pseudo-log-likelihood per visible unit, one value per example.

    log PL(v) = sum_i log p(v_i | v_-i) = sum_i log sigmoid(F(v with v_i flipped) - F(v)).
    One uniformly chosen unit per example gives an unbiased estimate of the per-unit mean (as
    scikit-learn's BernoulliRBM.score_samples does, before its multiplication by n_visible).
    """
    idx = torch.randint(0, v.shape[1], (v.shape[0],), generator=generator, device=v.device)
    rows = torch.arange(v.shape[0], device=v.device)
    v_flip = v.clone()
    v_flip[rows, idx] = 1 - v_flip[rows, idx]
    return F.logsigmoid(rbm.free_energy(v_flip) - rbm.free_energy(v))


def pseudo_log_likelihood(rbm: RBM, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """pseudo_log_likelihood_samples averaged over the batch."""
    return pseudo_log_likelihood_samples(rbm, v, generator).mean()


def free_energy_gap(rbm: RBM, v_train: Tensor, v_val: Tensor) -> Tensor:
    """mean F(validation) - mean F(training subset): grows when the RBM starts to overfit (guide, 6)."""
    return rbm.free_energy(v_val).mean() - rbm.free_energy(v_train).mean()


@torch.no_grad()
def log_partition_exact(rbm: RBM) -> Tensor:
    """log Z by enumerating every visible (or hidden) configuration; tiny Bernoulli RBMs only."""
    if rbm.visible != "bernoulli":
        raise ValueError("exact enumeration of Z is only defined here for Bernoulli visible units")
    n = min(rbm.n_visible, rbm.n_hidden)
    if n > 24:
        raise ValueError(f"enumerating 2^{n} states is too many; use AIS for RBMs this size")
    states = all_binary_states(n, device=rbm.W.device, dtype=rbm.W.dtype)
    if rbm.n_visible <= rbm.n_hidden:
        return torch.logsumexp(-rbm.free_energy(states), 0)
    # Sum out the visibles instead: F(h) = -c.h - sum_i softplus(b_i + W_i^T h).
    f_h = -(states @ rbm.c) - F.softplus(F.linear(states, rbm.W.t(), rbm.b)).sum(-1)
    return torch.logsumexp(-f_h, 0)


def all_binary_states(n: int, *, device=None, dtype=torch.float32) -> Tensor:
    """Every vector of {0, 1}^n as the rows of a (2^n, n) tensor."""
    codes = torch.arange(2**n, device=device).unsqueeze(1)
    bits = 2 ** torch.arange(n - 1, -1, -1, device=device)
    return ((codes & bits) > 0).to(dtype)


@torch.no_grad()
def log_likelihood_exact(rbm: RBM, v: Tensor) -> Tensor:
    """Average exact log p(v) in nats, with log Z by enumeration."""
    return (-rbm.free_energy(v) - log_partition_exact(rbm)).mean()
