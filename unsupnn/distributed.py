"""Data-parallel training: which slice of each epoch a process trains on.

Our loaders are not torch DataLoaders, so Lightning cannot inject a DistributedSampler; they shard
themselves. Every rank draws the same epoch permutation (same seed), and global step ``s`` uses the
``batch_size * world_size`` examples a single process with that batch size would use at step ``s``,
dealt out round-robin: rank ``r`` takes positions ``r, r + W, r + 2W, ...`` of the permutation. With
averaged gradients, W ranks at batch size B then train like one process at batch size W * B.
"""

from __future__ import annotations

import torch


def process_group() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless a torch.distributed group is running."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def check_shardable(n: int, world_size: int, drop_last: bool) -> None:
    if not drop_last and 0 < n < world_size:
        raise ValueError(
            f"{n} training examples cannot give each of the {world_size} processes at least one; "
            f"use fewer processes (trainer.devices) or more data"
        )


def n_steps(n: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Batches per rank in one epoch: the same on every rank, so DDP's gradient all-reduces stay in lockstep."""
    per_step = batch_size * world_size
    if drop_last:
        return n // per_step
    steps, tail = divmod(n, per_step)
    # A tail too short to give every rank an example joins the step before it (some batches one example
    # larger): no rank gets an empty batch and no example is dropped or repeated.
    return steps + (tail >= world_size)


def batch_bounds(n_shard: int, batch_size: int, steps: int, drop_last: bool) -> list[tuple[int, int]]:
    """[start, stop) of each batch within this rank's shard; the last batch takes the rest of the shard."""
    bounds = [(i * batch_size, (i + 1) * batch_size) for i in range(steps)]
    if bounds and not drop_last:
        bounds[-1] = (bounds[-1][0], n_shard)
    return bounds
