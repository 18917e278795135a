"""Splits of a memory-mapped array that may be larger than memory, served as whole batches.

A split is a sorted index array into the mapped file, never a copy of it: rows are read from disk (or
the page cache) when a batch, a slice or a statistic asks for them.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from unsupnn.data.loader import BatchTransform, check_batch_size, epoch_permutation, transform_generator
from unsupnn.distributed import batch_bounds, check_shardable, n_steps

CHUNK_BYTES = 32 * 2**20  # rows read at a time by full passes (statistics, checks)


def chunk_rows(n_features: int, itemsize: int = 8) -> int:
    return max(1, CHUNK_BYTES // (n_features * itemsize))


class MappedRows:
    """Rows ``index`` of a memory-mapped, C-ordered 2-D array, read on demand as float32 tensors.

    It stands in for the float32 tensor of an in-memory split where training code touches one:
    ``len``, ``shape``, ``numel()``, indexing (int, slice or index array: a tensor comes back) and
    ``min()``, ``max()``, ``mean(0)`` over all rows, computed in one chunked pass and cached.
    ``transform`` (the fitted scaler) maps raw rows to what the model sees.
    """

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, array: np.memmap, index: np.ndarray, transform: Callable[[np.ndarray], np.ndarray] | None = None):
        self.array, self.index, self.transform = array, np.asarray(index, dtype=np.int64), transform
        self.shape = torch.Size((len(self.index), array.shape[1]))
        self._stats: tuple[Tensor, Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return len(self.index)

    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    def subset(self, positions: np.ndarray) -> MappedRows:
        """The rows at ``positions`` of this split, still mapped."""
        return MappedRows(self.array, self.index[positions], self.transform)

    def __getitem__(self, key) -> Tensor:
        rows = self.array[self.index[key]]  # reads just these rows
        if self.transform is not None:
            rows = self.transform(rows)
        # A row of the read-only mapping itself (an int key) is copied: tensors expect writable memory.
        return torch.from_numpy(np.require(rows, dtype=np.float32, requirements=["C", "W"]))

    def chunks(self) -> Iterator[Tensor]:
        step = chunk_rows(self.shape[1])
        for start in range(0, len(self), step):
            yield self[start : start + step]

    def _statistics(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._stats is None:
            lo, hi, total = math.inf, -math.inf, torch.zeros(self.shape[1], dtype=torch.float64)
            for chunk in self.chunks():
                lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
                total += chunk.sum(0, dtype=torch.float64)
            self._stats = (torch.tensor(lo), torch.tensor(hi), (total / max(len(self), 1)).float())
        return self._stats

    def min(self) -> Tensor:
        return self._statistics()[0]

    def max(self) -> Tensor:
        return self._statistics()[1]

    def mean(self, dim: int) -> Tensor:
        if dim != 0:
            raise ValueError(f"MappedRows.mean(dim={dim}): only the mean over rows (dim=0) is available")
        return self._statistics()[2]

    def __getstate__(self) -> dict:
        # DataLoader workers that are spawned (not forked) get the file's coordinates, not a copy of it.
        state = dict(self.__dict__)
        a = state.pop("array")
        state["mapping"] = (a.filename, a.dtype.str, a.shape, a.offset)
        return state

    def __setstate__(self, state: dict) -> None:
        filename, dtype, shape, offset = state.pop("mapping")
        self.__dict__.update(state)
        self.array = np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)


class _Batches(Dataset):
    """Item i is batch i: with ``batch_size=None`` a DataLoader's workers read whole batches ahead."""

    def __init__(self, x: MappedRows, y: Tensor | None, batches: list[np.ndarray]):
        self.x, self.y, self.batches = x, y, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        idx = self.batches[i]
        return self.x[idx] if self.y is None else (self.x[idx], self.y[torch.from_numpy(idx)])


class MappedLoader:
    """Mini-batches of a :class:`MappedRows` split (and its labels), one fancy-indexed read per batch.

    Shuffling draws the same per-epoch permutation as :class:`InMemoryLoader`; each batch's indices are
    sorted before the read, so the disk is walked forward (the order inside a batch does not matter to a
    gradient step). ``num_workers > 0`` reads batches ahead in worker processes. ``rank`` and
    ``world_size`` shard each epoch over processes exactly as :class:`InMemoryLoader` does.
    """

    def __init__(
        self,
        x: MappedRows,
        y: Tensor | None = None,
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        transform: BatchTransform | None = None,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        check_batch_size(batch_size)
        check_shardable(len(x), world_size, drop_last=False)
        if y is not None and len(y) != len(x):
            raise ValueError(f"{len(x)} rows but {len(y)} labels")
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self.transform, self.num_workers, self.rank, self.world_size = transform, num_workers, rank, world_size
        self.epoch = 0

    def __len__(self) -> int:
        return n_steps(len(self.x), self.batch_size, self.world_size, drop_last=False)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        n = len(self.x)
        order = epoch_permutation(n, self.seed, self.epoch).numpy() if self.shuffle else np.arange(n)
        order = order[self.rank :: self.world_size]
        generator = transform_generator(self.seed, self.epoch, self.rank, torch.device("cpu")) if self.transform else None
        self.epoch += 1
        bounds = batch_bounds(len(order), self.batch_size, len(self), drop_last=False)
        batches = [np.sort(order[start:stop]) for start, stop in bounds]
        source = _Batches(self.x, self.y, batches)
        if self.num_workers:
            reader = DataLoader(source, batch_size=None, num_workers=self.num_workers)
        else:
            reader = (source[i] for i in range(len(source)))
        for batch in reader:
            if self.transform is not None:
                batch = self.transform(batch, generator) if self.y is None else (self.transform(batch[0], generator), batch[1])
            yield batch
