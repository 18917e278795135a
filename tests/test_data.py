from __future__ import annotations

import numpy as np
import pytest
import torch

from unsupnn.data import ArrayDataModule, DigitsDataModule, InMemoryLoader
from unsupnn.data.digits import nudge
from unsupnn.data.loader import epoch_permutation


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


def ids_module(n: int = 100, span: float = 1.0, **kwargs):
    """An in-memory datamodule whose row i is [i / n * span, u_i] with u_i uniform in [0, 1), label i % 3."""

    class Rows(ArrayDataModule):
        def load_arrays(self):
            u = np.random.default_rng(0).random(n)
            return np.stack([np.arange(n) / n * span, u], 1), np.arange(n) % 3

    return Rows(**kwargs)


def ids_of(x: torch.Tensor, n: int = 100) -> torch.Tensor:
    return (x[:, 0] * n).round().long()


def split_ids(dm) -> list[list[int]]:
    return [ids_of(x).tolist() for x in (dm.x_train, dm.x_val, dm.x_test)]


def test_split_sizes_cover_every_row_once_and_follow_the_seed():
    dm = ids_module(test_fraction=0.2, val_fraction=0.1)
    dm.setup()
    train, val, test = split_ids(dm)
    assert (len(train), len(val), len(test)) == (72, 8, 20)
    assert sorted(train + val + test) == list(range(100))
    same, other = ids_module(split_seed=0), ids_module(split_seed=1)
    same.setup(), other.setup()
    assert split_ids(same) == split_ids(dm) and split_ids(other) != split_ids(dm)
    assert torch.equal(dm.y_train, ids_of(dm.x_train) % 3)


def test_too_few_examples_for_the_split_is_refused():
    with pytest.raises(ValueError, match=r"has 3 examples: too few to split.*lower the fractions"):
        ids_module(n=3, test_fraction=0.5, val_fraction=0.5).setup()


def test_stochastic_binarize_draws_fresh_binary_batches_for_pretraining_only():
    dm = ids_module(n=400, batch_size=300, test_fraction=0.0, val_fraction=0.25, binarize="stochastic")
    dm.setup()
    dm.x_train[:, 0] = dm.x_val[:, 0] = 0.3  # a grey column (the ids are not needed here)
    loader = dm.train_dataloader()
    first, second = (next(iter(loader))[0] for _ in range(2))
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    assert abs(float(first[:, 0].mean()) - 0.3) < 0.1  # a Bernoulli draw with the grey value as probability
    assert torch.all(dm.x_train[:, 0] == torch.tensor(0.3))  # no binarized copy replaced the data
    labelled = dm.loader(dm.x_labelled, dm.y_labelled, shuffle=True)  # what the classifier is given
    assert torch.all(next(iter(labelled))[0][:, 0] == torch.tensor(0.3))
    assert torch.all(next(iter(dm.val_dataloader()))[0][:, 0] == torch.tensor(0.3))  # validation metrics: grey


def test_stochastic_binarize_draws_from_the_epochs_own_generator():
    # A function of (seed, epoch): what else draws from torch's global generator in between changes nothing.
    dm = ids_module(n=400, batch_size=100, test_fraction=0.0, val_fraction=0.0, binarize="stochastic")
    dm.setup()
    loader = dm.train_dataloader()
    draws = []
    for epoch, noise in ((3, 0), (3, 1000), (4, 0)):
        loader.set_epoch(epoch)
        torch.rand(noise)  # another user of the global generator
        draws.append(torch.cat([x for x, _ in loader]))
    assert set(draws[0].unique().tolist()) == {0.0, 1.0}
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_threshold_binarize_and_the_range_check_of_stochastic():
    dm = ids_module(n=50, batch_size=50, test_fraction=0.0, val_fraction=0.0, binarize="threshold", binarize_threshold=0.5)
    dm.setup()
    torch.manual_seed(7)
    x, _ = next(iter(dm.train_dataloader()))
    perm = epoch_permutation(50, 7, 0)  # the loader's shuffle of the first epoch, seeded by the run's seed
    assert torch.equal(x, (dm.x_train[perm] > 0.5).float())
    with pytest.raises(ValueError, match=r"binarize=stochastic .* values in \[0, 99\].*data.scaling=minmax"):
        ids_module(span=100, binarize="stochastic").setup()
    with pytest.raises(ValueError, match="data.binarize='yes'"):
        ids_module(binarize="yes")


def test_on_device_uses_the_gpu_when_there_is_one():
    dm = ids_module(on_device=True, labels_per_class=2)
    dm.setup()
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert {t.device.type for t in (dm.x_train, dm.y_val, dm.x_labelled)} == {expected}
    x, y = next(iter(dm.train_dataloader()))
    assert x.device.type == expected and torch.equal(y, ids_of(x) % 3)
