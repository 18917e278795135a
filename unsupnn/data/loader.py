"""Whole-batch slices of in-memory tensors: no per-sample __getitem__, no collate in the loop."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class InMemoryLoader:
    """Iterates over mini-batches of tensors that share their first dimension.

    Each epoch with ``shuffle`` the tensors are permuted once (one gather per epoch) and batches are
    views into the permuted copy, so a step costs a slice, not a Python loop over examples. The
    permutation of epoch e depends only on (seed, e): a resumed run sees the same batches.
    """

    def __init__(self, *tensors: Tensor, batch_size: int, shuffle: bool = False, drop_last: bool = False, seed: int = 0):
        if not tensors:
            raise ValueError("InMemoryLoader needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors disagree on the number of examples: {[t.shape[0] for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; it must be a positive integer")
        self.tensors, self.n = tensors, n
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        tensors = self.tensors
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            perm = torch.randperm(self.n, generator=gen).to(tensors[0].device)
            tensors = tuple(t[perm] for t in tensors)
        self.epoch += 1
        for i in range(len(self)):
            batch = tuple(t[i * self.batch_size : (i + 1) * self.batch_size] for t in tensors)
            yield batch if len(batch) > 1 else batch[0]
