from __future__ import annotations

import numpy as np
import pytest
import torch

from unsupnn.data import DigitsDataModule, InMemoryLoader
from unsupnn.data.digits import nudge


def test_loader_covers_every_example_once_per_epoch_in_new_orders():
    x, y = torch.arange(23.0)[:, None], torch.arange(23)
    loader = InMemoryLoader(x, y, batch_size=5, shuffle=True, seed=1)
    assert len(loader) == 5
    orders = []
    for _ in range(2):
        batches = list(loader)
        assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)  # x and y stay paired
        seen = torch.cat([by for _, by in batches])
        assert sorted(seen.tolist()) == list(range(23))
        orders.append(seen)
    assert not torch.equal(*orders)
    loader.set_epoch(0)
    assert torch.equal(torch.cat([by for _, by in loader]), orders[0])  # epoch e's order is reproducible


def test_digits_split_and_scaling():
    dm = DigitsDataModule(batch_size=32)
    dm.setup()
    assert dm.n_features == 64 and dm.n_classes == 10
    assert len(dm.x_test) == 360 and len(dm.x_train) + len(dm.x_val) == 1797 - 360
    assert 0 <= float(dm.x_train.min()) and float(dm.x_train.max()) <= 1
    again = DigitsDataModule(batch_size=32)
    again.setup()
    assert torch.equal(dm.x_val, again.x_val)


def test_nudge_matches_scikit_learns_convolution():
    from scipy.ndimage import convolve
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x[:50].astype(np.float32)
    kernels = [[[0, 1, 0], [0, 0, 0], [0, 0, 0]], [[0, 0, 0], [1, 0, 0], [0, 0, 0]],
               [[0, 0, 0], [0, 0, 1], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 1, 0]]]
    expected = np.concatenate([x] + [np.array([convolve(r.reshape(8, 8), mode="constant", weights=k).ravel() for r in x])
                                     for k in kernels])
    got, labels = nudge(x, y[:50])
    np.testing.assert_array_equal(got, expected)
    assert len(labels) == 250


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="val_fraction"):
        DigitsDataModule(val_fraction=1.5)
