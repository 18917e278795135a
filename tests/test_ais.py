"""AIS estimates of log Z against exact enumeration on RBMs small enough to enumerate."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import load_digits

from unsupnn.nn.ais import ais_log_likelihood, ais_log_partition, base_rate_bias, beta_schedule
from unsupnn.nn.rbm import RBM, log_likelihood_exact, log_partition_exact


def test_beta_schedule_is_increasing_from_zero_to_one():
    betas = beta_schedule(1450)
    assert len(betas) == 1450 and betas[0] == 0 and betas[-1] == 1
    assert bool((betas[1:] > betas[:-1]).all())
    assert int(((betas >= 0.9)).sum()) > int(((betas < 0.5)).sum())  # most of the path near beta = 1


def test_ais_matches_exact_log_z_on_a_random_rbm():
    torch.manual_seed(0)
    rbm = RBM(n_visible=30, n_hidden=12)
    with torch.no_grad():
        rbm.W.normal_(0, 0.3)
        rbm.b.normal_(0, 0.5)
        rbm.c.normal_(0, 0.5)
    exact = float(log_partition_exact(rbm))
    result = ais_log_partition(rbm, n_runs=200, n_betas=2000, generator=torch.Generator().manual_seed(1))
    assert abs(result.log_z - exact) < 0.1, (result, exact)
    assert result.log_z_low <= result.log_z <= result.log_z_high


def trained_digits_rbm() -> tuple[RBM, torch.Tensor]:
    x, _ = load_digits(return_X_y=True)
    v = torch.tensor(x / 16.0, dtype=torch.float32).round()  # binary digits, 64 visible units
    torch.manual_seed(0)
    rbm = RBM(n_visible=64, n_hidden=14)
    rbm.init_visible_bias(v.mean(0))
    opt = torch.optim.SGD(rbm.parameters(), lr=0.05, momentum=0.9)
    for _ in range(15):
        for batch in v[torch.randperm(len(v))].split(50):
            v_model, _ = rbm.negative_phase(batch, 1)
            opt.zero_grad()
            rbm.contrastive_divergence(batch, v_model).backward()
            opt.step()
    return rbm, v


def test_ais_matches_exact_log_z_and_likelihood_on_a_trained_rbm():
    rbm, v = trained_digits_rbm()
    assert float(rbm.W.abs().max()) > 1.0  # trained: far from the easy near-uniform regime
    exact = float(log_partition_exact(rbm))
    ll, result = ais_log_likelihood(rbm, v, base_bias=base_rate_bias(v), n_runs=100, n_betas=3000,
                                    generator=torch.Generator().manual_seed(2))
    assert abs(result.log_z - exact) < 0.1, (result, exact)
    assert abs(ll - float(log_likelihood_exact(rbm, v))) < 0.1
    # The base-rate model starts the path close to the data: far better than a uniform start.
    assert ll > -64 * math.log(2)


def test_ais_refuses_gaussian_units():
    with pytest.raises(ValueError, match="Bernoulli"):
        ais_log_partition(RBM(n_visible=3, n_hidden=2, visible="gaussian"))
