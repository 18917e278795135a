"""Label budgets: exact stratified, seeded picks, and the pipeline training classifiers on them alone."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import make_cfg
from unsupnn import tasks
from unsupnn.data import DigitsDataModule, NpyDataModule
from unsupnn.data.budget import pick_labelled

# Imbalanced classes: 50, 20, 7 and 13 examples.
Y = np.random.default_rng(0).permutation(np.repeat([0, 1, 2, 3], [50, 20, 7, 13]))


def test_exact_counts_per_class():
    picks = pick_labelled(Y, 5, seed=0)
    assert np.bincount(Y[picks]).tolist() == [5, 5, 5, 5]
    assert np.all(np.diff(picks) > 0)  # sorted, no repeats


def test_a_fraction_keeps_that_share_of_every_class_and_at_least_one():
    picks = pick_labelled(Y, 0.1, seed=0)
    assert np.bincount(Y[picks]).tolist() == [5, 2, 1, 1]
    assert len(pick_labelled(Y, 1.0, seed=0)) == len(Y)


def test_same_seed_same_picks_and_smaller_budgets_are_subsets():
    assert np.array_equal(pick_labelled(Y, 5, seed=3), pick_labelled(Y, 5, seed=3))
    assert not np.array_equal(pick_labelled(Y, 5, seed=3), pick_labelled(Y, 5, seed=4))
    assert set(pick_labelled(Y, 3, seed=3)) < set(pick_labelled(Y, 6, seed=3))


def test_a_budget_larger_than_a_class_is_refused():
    with pytest.raises(ValueError, match=r"asks for 10 examples of class 2, but the training split holds only 7"):
        pick_labelled(Y, 10, seed=0)


@pytest.mark.parametrize("bad", [0, -3, 1.5, "ten", True])
def test_bad_budgets_are_refused_at_construction(bad):
    with pytest.raises(ValueError, match="data.labels_per_class"):
        DigitsDataModule(labels_per_class=bad)


def test_the_datamodule_picks_from_the_training_split_with_its_own_seed():
    dm = DigitsDataModule(labels_per_class=3)
    dm.setup()
    assert dm.y_labelled.bincount().tolist() == [3] * 10
    rows = {tuple(r.tolist()): int(y) for r, y in zip(dm.x_train, dm.y_train)}
    assert all(rows[tuple(r.tolist())] == int(y) for r, y in zip(dm.x_labelled, dm.y_labelled))  # training rows, own labels
    again, reseeded = DigitsDataModule(labels_per_class=3), DigitsDataModule(labels_per_class=3, label_seed=7)
    again.setup(), reseeded.setup()
    assert torch.equal(again.x_labelled, dm.x_labelled) and not torch.equal(reseeded.x_labelled, dm.x_labelled)
    assert torch.equal(reseeded.x_train, dm.x_train)  # the label seed moves the labels, not the split


def test_pipeline_pretrains_on_everything_and_classifies_with_the_budget(tmp_path):
    cfg = make_cfg("pretrain", ["data.labels_per_class=5", "trainer.max_epochs=1", "classifier.max_epochs=1", "classifier.min_steps=0",
                                "model.n_hidden=8", "logger=none", "classifier.methods=[probe,raw_logistic]"], tmp_path)
    results = tasks.pretrain(cfg)
    assert results["labels"] == {"labels_per_class": 5, "n_labelled": 50}
    assert json.loads((tmp_path / "results.json").read_text())["labels"]["n_labelled"] == 50
    # The steps taken: pretraining walked every training example, the probe only the 50 labelled ones.
    pretrain_steps = torch.load(tmp_path / "checkpoints" / "pretrain" / "last.ckpt", weights_only=True)["global_step"]
    probe_steps = torch.load(tmp_path / "checkpoints" / "probe" / "best.ckpt", weights_only=True)["global_step"]
    assert pretrain_steps == math.ceil(results["n_train"] / 32) and probe_steps == math.ceil(50 / 32)


def test_a_budget_needs_labels(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((30, 4)))
    with pytest.raises(ValueError, match=r"labels_per_class=5 but .*x.npy has no labels.*data.labels"):
        NpyDataModule(path=str(tmp_path / "x.npy"), labels_per_class=5).setup()
