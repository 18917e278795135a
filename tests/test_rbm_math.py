"""The RBM's mathematics against independent computations: enumeration and hand-written CD updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unsupnn.nn.rbm import RBM, all_binary_states, log_likelihood_exact, log_partition_exact, pseudo_log_likelihood


def random_rbm(n_visible=5, n_hidden=4, visible="bernoulli", seed=0, scale=1.0) -> RBM:
    torch.manual_seed(seed)
    rbm = RBM(n_visible=n_visible, n_hidden=n_hidden, visible=visible).double()
    with torch.no_grad():
        for p in rbm.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return rbm


def brute_force_free_energy(rbm: RBM, v: torch.Tensor) -> torch.Tensor:
    """-log sum_h exp(-E(v, h)) with E written out element by element from the definition."""
    W, b, c = rbm.W.detach().numpy(), rbm.b.detach().numpy(), rbm.c.detach().numpy()
    out = []
    for vv in v.numpy():
        terms = []
        for h in all_binary_states(rbm.n_hidden, dtype=torch.float64).numpy():
            interaction = sum(h[j] * W[j, i] * vv[i] for j in range(len(h)) for i in range(len(vv)))
            if rbm.visible == "bernoulli":
                e = -(b @ vv) - (c @ h) - interaction
            else:
                e = 0.5 * ((vv - b) ** 2).sum() - (c @ h) - interaction
            terms.append(-e)
        out.append(-np.logaddexp.reduce(terms))
    return torch.tensor(out)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_matches_enumeration_over_hidden_states(visible):
    rbm = random_rbm(visible=visible)
    v = all_binary_states(5, dtype=torch.float64) if visible == "bernoulli" else torch.randn(7, 5, dtype=torch.float64)
    torch.testing.assert_close(rbm.free_energy(v), brute_force_free_energy(rbm, v))


def test_energy_and_free_energy_agree():
    rbm = random_rbm()
    v = all_binary_states(5, dtype=torch.float64)
    h = all_binary_states(4, dtype=torch.float64)
    energies = rbm.energy(v[:, None, :].expand(-1, len(h), -1), h[None].expand(len(v), -1, -1))
    torch.testing.assert_close(-torch.logsumexp(-energies, dim=1), rbm.free_energy(v))


@pytest.mark.parametrize("n_visible,n_hidden", [(6, 4), (4, 6)])
def test_log_partition_by_either_layer_matches_joint_enumeration(n_visible, n_hidden):
    rbm = random_rbm(n_visible, n_hidden, seed=3)
    v, h = all_binary_states(n_visible, dtype=torch.float64), all_binary_states(n_hidden, dtype=torch.float64)
    joint = rbm.energy(v[:, None, :].expand(-1, len(h), -1), h[None].expand(len(v), -1, -1))
    torch.testing.assert_close(log_partition_exact(rbm), torch.logsumexp(-joint.flatten(), 0))


def test_conditionals_are_the_exact_posteriors():
    rbm = random_rbm()
    v = all_binary_states(5, dtype=torch.float64)[[3, 17, 30]]
    h_states = all_binary_states(4, dtype=torch.float64)
    joint = -rbm.energy(v[:, None, :].expand(-1, 16, -1), h_states[None].expand(3, -1, -1))
    posterior = torch.softmax(joint, dim=1)  # p(h | v) by enumeration
    torch.testing.assert_close(posterior @ h_states, rbm.h_prob(v))


def test_cd_gradient_is_the_textbook_update():
    """grad of mean F(v_data) - mean F(v_model) = -(<v h>_data - <v h>_model), hidden probabilities."""
    rbm = random_rbm(n_visible=6, n_hidden=3, seed=1)
    g = torch.Generator().manual_seed(0)
    v_data = torch.bernoulli(torch.full((8, 6), 0.4, dtype=torch.float64), generator=g)
    v_model = torch.bernoulli(torch.full((8, 6), 0.6, dtype=torch.float64), generator=g)
    rbm.zero_grad()
    rbm.contrastive_divergence(v_data, v_model).backward()

    W, b, c = (p.detach().numpy().copy() for p in (rbm.W, rbm.b, rbm.c))
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    vd, vm = v_data.numpy(), v_model.numpy()
    hd, hm = sig(vd @ W.T + c), sig(vm @ W.T + c)
    n = len(vd)
    dW = (hd.T @ vd - hm.T @ vm) / n
    db = (vd - vm).mean(0)
    dc = (hd - hm).mean(0)
    np.testing.assert_allclose(-rbm.W.grad.numpy(), dW, rtol=1e-10)
    np.testing.assert_allclose(-rbm.b.grad.numpy(), db, rtol=1e-10)
    np.testing.assert_allclose(-rbm.c.grad.numpy(), dc, rtol=1e-10)

    # One plain SGD step is then W += lr (<v h>_data - <v h>_model).
    lr = 0.1
    torch.optim.SGD(rbm.parameters(), lr=lr).step()
    np.testing.assert_allclose(rbm.W.detach().numpy(), W + lr * dW, rtol=1e-10)


def test_gibbs_step_samples_from_the_conditionals():
    rbm = random_rbm(n_visible=3, n_hidden=2, seed=2, scale=0.8).float()
    v0 = torch.tensor([[1.0, 0.0, 1.0]]).repeat(20000, 1)
    torch.manual_seed(0)
    v1 = rbm.gibbs(v0, k=1)
    # p(v1 | v0) = sum_h p(h | v0) p(v1 | h): exact by enumerating h.
    h = all_binary_states(2)
    ph = torch.prod(torch.where(h.bool(), rbm.h_prob(v0[:1]), 1 - rbm.h_prob(v0[:1])), dim=1)
    expected = (ph[:, None] * rbm.v_mean(h)).sum(0)
    torch.testing.assert_close(v1.mean(0), expected.detach(), atol=0.015, rtol=0)


def test_pseudo_log_likelihood_estimates_the_exact_one():
    rbm = random_rbm(n_visible=5, n_hidden=3, seed=4).float()
    v = all_binary_states(5)
    exact = []
    for i in range(5):
        flipped = v.clone()
        flipped[:, i] = 1 - flipped[:, i]
        exact.append(torch.nn.functional.logsigmoid(rbm.free_energy(flipped) - rbm.free_energy(v)))
    exact = torch.stack(exact, 1).mean()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        estimates = torch.stack([pseudo_log_likelihood(rbm, v, generator=g) for _ in range(400)])
    assert abs(float(estimates.mean() - exact)) < 0.01


def bars_and_stripes(side: int = 3) -> torch.Tensor:
    patterns = set()
    for bits in all_binary_states(side).tolist():
        rows = torch.tensor(bits)[:, None].expand(side, side)
        patterns.add(tuple(rows.flatten().tolist()))
        patterns.add(tuple(rows.t().flatten().tolist()))
    return torch.tensor(sorted(patterns))


@pytest.mark.parametrize("persistent", [False, True])
def test_training_on_bars_and_stripes_raises_the_exact_log_likelihood(persistent):
    data = bars_and_stripes(3)  # 14 distinct patterns of 9 pixels
    torch.manual_seed(0)
    rbm = RBM(n_visible=9, n_hidden=8)
    rbm.init_visible_bias(data.mean(0))
    before = float(log_likelihood_exact(rbm, data))
    opt = torch.optim.SGD(rbm.parameters(), lr=0.1, momentum=0.5)
    chains = data.repeat(4, 1).bernoulli() if persistent else None  # 56 persistent chains
    for _ in range(2000):
        v_model, _ = rbm.negative_phase(data, 1, chains)
        if persistent:
            chains = v_model
        opt.zero_grad()
        rbm.contrastive_divergence(data, v_model).backward()
        opt.step()
    after = float(log_likelihood_exact(rbm, data))
    # Uniform over the 14 patterns would be log(1/14) = -2.64 nats; the untrained model is near 9 log 1/2 = -6.2.
    assert after > before + 2.0, (before, after)
    assert after > -4.0, after
    assert math.isfinite(after)
