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

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unsupnn.nn.noise import bernoulli

VISIBLE_TYPES = ("bernoulli", "gaussian")


class CDStep(NamedTuple):
    loss: Tensor  # mean F(v_data) - mean F(v_model); its gradient is the CD update
    v_model: Tensor  # the negative particles (the new chain state under PCD)
    recon: Tensor | None  # E[v_1 | h_0]: the one-step reconstruction of v_data from a sampled hidden state
    statistics: tuple[Tensor, Tensor, Tensor, Tensor] = ()  # v_data, h_data, v_model, h_model

    def gradients(self) -> tuple[Tensor, Tensor, Tensor]:
        """The gradient of ``loss`` with respect to (W, b, c), in closed form: what ``loss.backward()`` gives,
        bit for bit, without a trip through the autograd engine."""
        return cd_gradients(*self.statistics, self.loss.new_ones(()))


def softplus(x: Tensor) -> Tensor:
    """softplus(x) = log(1 + e^x), computed as max(x, 0) - log sigmoid(|x|).

    Equal to ``F.softplus`` within 1e-6 in float32 (1e-15 in float64), and 3x faster on a CPU, where
    torch's softplus (a log1p of an exp) cost as much as one of a CD step's matrix products. sigmoid(|x|)
    lies in [1/2, 1], so nothing overflows, underflows or goes through denormal numbers, whatever x is.
    """
    return F.relu(x) - torch.sigmoid(x.abs()).log()


def flush_tiny_(t: Tensor) -> Tensor:
    """Set entries below ``2^24`` times the dtype's smallest normal number (2e-31 in float32) to zero, in place.

    Hidden probabilities of saturated units land in the denormal range (sigmoid of a pre-activation near
    -88 in float32); a CPU multiplies denormals 10-100x slower, enough to halve the speed of a PCD epoch.
    Their contribution to any statistic is below 1e-30, far under float32 rounding.
    """
    return F.threshold_(t, torch.finfo(t.dtype).tiny * 2.0**24, 0.0)


class _CDObjective(torch.autograd.Function):
    """The CD objective from pre-activations computed once: forward is mean F(v_data) - mean F(v_model),
    backward the textbook update  -(<h v>_data - <h v>_model)  (hidden probabilities, float32 statistics).

    Autograd on ``free_energy`` would compute the data's pre-activation a second time and build a graph
    for it; here the update costs the two gradient products and nothing else.
    """

    @staticmethod
    def forward(ctx, W, b, c, v_data, h_data, f_data, v_model, h_model, f_model):  # noqa: ARG004 (W, b, c: for autograd)
        ctx.save_for_backward(v_data, h_data, v_model, h_model)
        return f_data.mean() - f_model.mean()

    @staticmethod
    def backward(ctx, grad):
        return *cd_gradients(*ctx.saved_tensors, grad), None, None, None, None, None, None


def cd_gradients(v_data: Tensor, h_data: Tensor, v_model: Tensor, h_model: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``grad`` times the gradient of mean F(v_data) - mean F(v_model) in (W, b, c): -(<h v>_data - <h v>_model)."""
    s_data, s_model = grad / len(v_data), grad / len(v_model)  # tensors: no host sync
    hd, hm = flush_tiny_(h_data * s_data), flush_tiny_(h_model * s_model)
    grad_W = torch.addmm(hm.t() @ v_model, hd.t(), v_data, alpha=-1)  # hm^T v_m - hd^T v_d in two products
    grad_b = v_model.sum(0) * s_model - v_data.sum(0) * s_data
    grad_c = hm.sum(0) - hd.sum(0)
    return grad_W, grad_b, grad_c


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
        return p, bernoulli(p, generator)

    def sample_v(self, h: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        mean = self.v_mean(h)
        if self.visible == "bernoulli":
            return mean, bernoulli(mean, generator)
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
        return self._free_energy(v, F.linear(v, self.W, self.c))

    def _free_energy(self, v: Tensor, pre: Tensor) -> Tensor:
        """F(v) from the hidden pre-activation ``pre`` = c + W v."""
        hidden = softplus(pre).sum(-1)
        if self.visible == "bernoulli":
            return -(v @ self.b) - hidden
        return 0.5 * ((v - self.b) ** 2).sum(-1) - hidden

    # learning -----------------------------------------------------------------------------------
    def contrastive_divergence(self, v_data: Tensor, v_model: Tensor) -> Tensor:
        """The CD objective mean F(v_data) - mean F(v_model); its gradient is the CD update."""
        return self.free_energy(v_data).mean() - self.free_energy(v_model.detach()).mean()

    def cd_step(
        self,
        v_data: Tensor,
        k: int,
        chains: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        gibbs_dtype: torch.dtype | None = None,
        reconstruct: bool = True,
    ) -> CDStep:
        """One CD-k (or PCD-k with ``chains``) step: the objective, the negative particles, the reconstruction.

        The same numbers as ``negative_phase`` followed by ``contrastive_divergence`` (same random draws in
        the same order, same objective, same gradient), with each matrix product done once: the data's
        hidden probabilities serve both the first Gibbs step and the positive statistics, the model's
        hidden probabilities both the objective and the negative statistics (2k + 3 products for CD-k).

        ``gibbs_dtype`` (e.g. ``torch.bfloat16``): the products whose only use is to draw the next state of
        the chain (every Gibbs step of PCD, steps 2..k of CD-k) run in that dtype, 1.5-2x faster with
        bf16 units (GPU tensor cores, CPUs with AMX); probabilities, random draws, statistics, objective
        and reconstruction stay in the parameters' dtype.

        ``reconstruct=False`` (PCD only; CD-k's reconstruction is its first Gibbs step, so it is always there):
        skip the data's reconstruction, a product and a random draw whose only use is the reconstruction
        error metric; ``recon`` is then None.
        """
        if k < 1:
            raise ValueError(f"k={k}: contrastive divergence needs at least one Gibbs step (k >= 1)")
        # The Gibbs chain written out with the parameters in locals (what gibbs() does, without a dozen
        # Python calls per step), probabilities computed in place on the fresh product.
        W, b, c, g = self.W, self.b, self.c, generator
        Wt, bernoulli_visible = W.t(), self.visible == "bernoulli"

        def v_mean(h: Tensor) -> Tensor:
            a = F.linear(h, Wt, b)
            return a.sigmoid_() if bernoulli_visible else a

        def v_sample(mean: Tensor) -> Tensor:
            if bernoulli_visible:
                return bernoulli(mean, g)
            return mean + torch.randn(mean.shape, generator=g, device=mean.device, dtype=mean.dtype)

        with torch.no_grad():
            if gibbs_dtype is None or gibbs_dtype == W.dtype:

                def gibbs_step(v: Tensor) -> Tensor:
                    return v_sample(v_mean(bernoulli(F.linear(v, W, c).sigmoid_(), g)))

            else:  # the chain's products in gibbs_dtype (the states 0/1 are exact in it), the rest as is
                Wl, bl, cl = W.to(gibbs_dtype), b.to(gibbs_dtype), c.to(gibbs_dtype)
                Wlt = Wl.t()

                def gibbs_step(v: Tensor) -> Tensor:
                    h = bernoulli(F.linear(v.to(gibbs_dtype), Wl, cl).to(W.dtype).sigmoid_(), g)
                    a = F.linear(h.to(gibbs_dtype), Wlt, bl).to(W.dtype)
                    return v_sample(a.sigmoid_() if bernoulli_visible else a)

            pre_data = F.linear(v_data, W, c)
            h_data = torch.sigmoid(pre_data)
            if chains is None:  # CD: the chain starts at the data, its first hidden state drawn from h_data
                recon = v_mean(bernoulli(h_data, g))
                v_model, steps = v_sample(recon), k - 1
            else:
                v_model, steps = chains, k
            for _ in range(steps):
                v_model = gibbs_step(v_model)
            if chains is not None:  # PCD: the data's reconstruction, drawn after the chains as negative_phase does
                recon = v_mean(bernoulli(h_data, g)) if reconstruct else None
            pre_model = F.linear(v_model, W, c)
            h_model = torch.sigmoid(pre_model)
            f_data, f_model = self._free_energy(v_data, pre_data), self._free_energy(v_model, pre_model)
        loss = _CDObjective.apply(W, b, c, v_data, h_data, f_data, v_model, h_model, f_model)
        return CDStep(loss, v_model, recon, (v_data, h_data, v_model, h_model))

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
    f_h = -(states @ rbm.c) - softplus(F.linear(states, rbm.W.t(), rbm.b)).sum(-1)
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
