"""Data-parallel training: epoch sharding over ranks, and a real two-process DDP run on CPU (gloo)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from conftest import REPO, make_cfg, run_cli

import unsupnn
from unsupnn.data.loader import InMemoryLoader
from unsupnn.data.mapped import MappedLoader, MappedRows


def shards(n: int, batch_size: int, world_size: int, *, shuffle: bool = True, drop_last: bool = False, epoch: int = 0):
    """The batches every rank serves in one epoch, as lists of example ids."""
    out = []
    for rank in range(world_size):
        loader = InMemoryLoader(torch.arange(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                seed=7, rank=rank, world_size=world_size)
        loader.set_epoch(epoch)
        out.append([b.tolist() for b in loader])
        assert len(out[-1]) == len(loader)
    return out


@pytest.mark.parametrize("n,batch_size,world_size", [(100, 8, 2), (101, 8, 2), (65, 32, 2), (97, 10, 3), (5, 4, 4), (1293, 32, 2)])
def test_every_example_once_per_epoch_in_equal_batch_counts(n, batch_size, world_size):
    for epoch in (0, 1):
        per_rank = shards(n, batch_size, world_size, epoch=epoch)
        assert len({len(batches) for batches in per_rank}) == 1, "ranks must take the same number of steps"
        seen = [i for batches in per_rank for b in batches for i in b]
        assert sorted(seen) == list(range(n))
        assert all(1 <= len(b) <= batch_size + 1 for batches in per_rank for b in batches)


def test_ranks_share_one_permutation_per_epoch_and_it_changes_between_epochs():
    first, second = shards(64, 8, 2, epoch=0), shards(64, 8, 2, epoch=1)
    assert first != second
    # Rank r takes positions r, r + W, ... of the single-process order: W ranks at B train like one at W * B.
    single = [i for b in shards(64, 16, 1, epoch=0)[0] for i in b]
    assert [i for b in first[0] for i in b] == single[0::2] and [i for b in first[1] for i in b] == single[1::2]


def test_one_process_is_unchanged_and_drop_last_drops_only_the_tail():
    assert [len(b) for b in shards(10, 4, 1, shuffle=False)[0]] == [4, 4, 2]
    assert shards(10, 4, 1, shuffle=False)[0][0] == [0, 1, 2, 3]
    dropped = shards(21, 4, 2, drop_last=True)
    assert [len(b) for batches in dropped for b in batches] == [4, 4, 4, 4]


def test_more_processes_than_examples_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="3 training examples.*4 processes.*trainer.devices"):
        InMemoryLoader(torch.arange(3), batch_size=2, rank=0, world_size=4)


def test_mapped_loader_shards_like_the_in_memory_one(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(45, dtype=np.float32).reshape(45, 1))
    rows = MappedRows(np.load(path, mmap_mode="r"), np.arange(45))
    seen = []
    for rank in range(2):
        loader = MappedLoader(rows, batch_size=4, shuffle=True, seed=3, rank=rank, world_size=2)
        seen.append([int(v) for b in loader for v in b[:, 0]])
        in_memory = InMemoryLoader(torch.arange(45), batch_size=4, shuffle=True, seed=3, rank=rank, world_size=2)
        assert len(loader) == len(in_memory) and sorted(seen[-1]) == sorted(i for b in in_memory for i in b.tolist())
    assert sorted(seen[0] + seen[1]) == list(range(45))


def test_ddp_config_keeps_per_process_buffers(tmp_path):
    cfg = make_cfg("train", ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.num_nodes=1"], tmp_path)
    strategy = instantiate(cfg.trainer.strategy)
    assert strategy._ddp_kwargs == {"broadcast_buffers": False}  # the persistent chains stay each rank's own
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (2, 1)


def test_two_process_ddp_run_of_unsupnn_train(tmp_path):
    """unsupnn-train with trainer=ddp on two CPU processes; a test-only datamodule labels each example with
    its row number and a callback records, per rank, the ids trained on, the run dir and the final weights."""
    probe = tmp_path / "probe"
    proc = run_cli(
        ["unsupnn-train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2",
         "model.n_hidden=8", "model.persistent=true", "logger=none", "callbacks=none", "paths.log_dir=outputs",
         "data._target_=ddp_probe.IdDigits", "+callbacks.probe._target_=ddp_probe.RecordRank",
         f"+callbacks.probe.out_dir={probe}"],
        cwd=tmp_path, timeout=240, env={"PYTHONPATH": str(REPO / "tests")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]

    # One run directory, the same for both processes, although it is named after the start time (${now:...}).
    run_dirs = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(run_dirs) == 1
    assert ranks[0]["output_dir"] == ranks[1]["output_dir"] == str(run_dirs[0])

    train_ids = sorted(ranks[0]["train_ids"])
    for epoch in range(2):
        a, b = ranks[0]["epochs"][epoch], ranks[1]["epochs"][epoch]
        assert not set(a) & set(b), f"epoch {epoch}: the ranks overlap"
        assert sorted(a + b) == train_ids, f"epoch {epoch}: not every training example was seen exactly once"
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]  # a fresh permutation each epoch

    weights = [torch.load(probe / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert torch.equal(weights[0]["rbm.W"], weights[1]["rbm.W"])  # averaged gradients keep the replicas equal
    assert not torch.equal(weights[0]["chains"], weights[1]["chains"])  # each rank's own persistent chains
    encoder = unsupnn.load_encoder(run_dirs[0] / "encoder.safetensors")
    assert torch.equal(encoder[0].weight, weights[0]["rbm.W"]) and torch.equal(encoder[0].bias, weights[0]["rbm.c"])
    results = json.loads((run_dirs[0] / "results.json").read_text())
    assert {"train/recon", "val/recon", "val/fe_gap"} <= set(results["pretrain"]["metrics"])


def test_a_sweep_of_ddp_runs_keeps_one_sweep_directory(tmp_path):
    """Lightning re-runs the command line, -m included, in the second process: it must join this sweep's
    dated directory, not start its own, and must not leave its command line in multirun.yaml."""
    proc = run_cli(["unsupnn-train", "-m", "model=rbm,ae", "trainer=ddp", "trainer.accelerator=cpu",
                    "trainer.devices=2", "trainer.max_epochs=1", "logger=none", "callbacks=none", "paths.log_dir=outputs"],
                   cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    rows = (sweeps[0] / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",ok," in r for r in rows[1:])
    assert "ddp_process" not in (sweeps[0] / "multirun.yaml").read_text()
    models = [json.loads((sweeps[0] / job / "results.json").read_text())["pretrain"]["model"] for job in ("0", "1")]
    assert models == ["rbm", "ae"]  # the autoencoder trains under DDP too
    assert unsupnn.load_encoder(sweeps[0] / "1" / "encoder.safetensors").out_features == 16
