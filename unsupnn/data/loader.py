"""Whole-batch slices of in-memory tensors: no per-sample __getitem__, no collate in the loop."""

from __future__ import annotations

from itertools import islice
from typing import Callable, Iterable

import torch
from torch import Tensor

from unsupnn.distributed import batch_bounds, check_shardable, n_steps

BatchTransform = Callable[[Tensor, torch.Generator], Tensor]  # inputs, and the generator of any random draw


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The shuffled order of epoch ``epoch``: a function of (seed, epoch) only, so a resumed run repeats it."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def transform_generator(seed: int, epoch: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of epoch ``epoch``'s random batch transforms (stochastic binarisation) on process ``rank``.

    A function of (seed, epoch, rank) only, like the shuffle: the draws do not depend on whatever else uses the
    global generator (the model's own sampling, how many batches a training step takes), and a resumed run
    repeats them.
    """
    return torch.Generator(device=device).manual_seed((seed * 100_003 + epoch) * 1_009 + rank + 1)


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; it must be a positive integer")


class InMemoryLoader:
    """Iterates over mini-batches of tensors that share their first dimension.

    Each epoch with ``shuffle`` the tensors are permuted once (one gather per epoch) and batches are
    views into the permuted copy, so a step costs a slice, not a Python loop over examples.
    ``transform`` (e.g. stochastic binarisation) is applied to the inputs of each batch as it is served,
    so no transformed copy of the data is stored and a random transform is drawn afresh every epoch, from
    the epoch's own generator (``transform_generator``).
    With ``world_size > 1`` each epoch is dealt out over the processes (``unsupnn.distributed``): rank
    ``rank`` serves its disjoint share, in as many batches as every other rank.
    ``pin_memory`` (CPU tensors, with CUDA available): batches are views of page-locked memory, so their
    copies to the GPU run asynchronously (Lightning moves batches with ``non_blocking=True``); the epoch's
    permuted copy is gathered straight into page-locked buffers allocated once. Without CUDA it does nothing.
    """

    def __init__(
        self,
        *tensors: Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        transform: BatchTransform | None = None,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
    ):
        if not tensors:
            raise ValueError("InMemoryLoader needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors disagree on the number of examples: {[t.shape[0] for t in tensors]}")
        check_batch_size(batch_size)
        check_shardable(n, world_size, drop_last)
        self.tensors, self.n = tensors, n
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.transform, self.rank, self.world_size = transform, rank, world_size
        self.pin_memory = pin_memory and torch.cuda.is_available() and all(t.device.type == "cpu" for t in tensors)
        self._pinned: tuple[Tensor, ...] | None = None  # page-locked buffers, allocated on first use
        self.epoch = 0

    def __len__(self) -> int:
        return n_steps(self.n, self.batch_size, self.world_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        tensors = self.tensors
        if self.shuffle or self.world_size > 1:
            order = epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else torch.arange(self.n)
            order = order[self.rank :: self.world_size].to(tensors[0].device)
            if self.pin_memory:
                if self._pinned is None:
                    self._pinned = tuple(torch.empty((len(order), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
                                         for t in tensors)
                tensors = tuple(torch.index_select(t, 0, order, out=buf) for t, buf in zip(tensors, self._pinned))
            else:
                tensors = tuple(t[order] for t in tensors)
        elif self.pin_memory:
            if self._pinned is None:
                self._pinned = tuple(t.pin_memory() for t in tensors)
            tensors = self._pinned
        generator = transform_generator(self.seed, self.epoch, self.rank, tensors[0].device) if self.transform else None
        self.epoch += 1
        for start, stop in batch_bounds(len(tensors[0]), self.batch_size, len(self), self.drop_last):
            batch = [t[start:stop] for t in tensors]
            if self.transform is not None:
                batch[0] = self.transform(batch[0], generator)
            yield tuple(batch) if len(batch) > 1 else batch[0]


class Batches(list):
    """Consecutive mini-batches served as one item of a training loader: several updates in one Lightning step
    (``unsupnn.lit.common.SeveralUpdatesPerStep``). A list, so Lightning moves each batch to the device."""


class BatchGroups:
    """Serves the batches of ``loader`` in groups of ``n`` consecutive ones, each a :class:`Batches`.

    The batches, their order and their random transforms are the loader's own; only the number of items
    Lightning sees changes (the last group of an epoch may be shorter). ``set_epoch`` goes to the loader.
    """

    def __init__(self, loader: Iterable, n: int):
        check_batches_per_step(n)
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return -(-len(self.loader) // self.n)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self):
        batches = iter(self.loader)
        while group := Batches(islice(batches, self.n)):
            yield group


def check_batches_per_step(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"model.batches_per_step={n!r}; it must be a positive integer (1: one batch per training step)")
