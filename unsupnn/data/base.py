"""Datamodules for arrays: load once, split with a seed, fit preprocessing on the training split, serve whole batches."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.model_selection import train_test_split

from unsupnn.data.budget import check_budget, pick_labelled
from unsupnn.data.loader import BatchGroups, BatchTransform, InMemoryLoader
from unsupnn.data.mapped import MappedLoader, MappedRows, chunk_rows
from unsupnn.data.preprocessing import Preprocessing
from unsupnn.distributed import process_group
from unsupnn.nn.noise import bernoulli

BINARIZE = ("none", "threshold", "stochastic")


def binarizer(kind: str, threshold: float) -> BatchTransform | None:
    """The batch transform of ``data.binarize``: none, a fixed threshold, or a fresh Bernoulli draw per batch."""
    if kind not in BINARIZE:
        raise ValueError(f"data.binarize={kind!r}; use one of {BINARIZE}")
    if kind == "threshold":
        return lambda x, generator=None: (x > threshold).to(x.dtype)
    return bernoulli if kind == "stochastic" else None  # bernoulli(p, generator)


def check_labels(y, n: int, where: str) -> np.ndarray:
    """Labels as int64 class numbers 0, 1, 2, ...; integral floats pass, anything else stops with the row."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{where}: labels have shape {y.shape} but there are {n} examples; give one label per example")
    if y.dtype.kind not in "iuf":
        raise ValueError(f"{where}: labels of type {y.dtype} are not class numbers; give integers 0, 1, 2, ...")
    if y.dtype.kind == "f":
        bad = np.nonzero(~np.isfinite(y) | (y != np.round(y)))[0]
        if len(bad):
            raise ValueError(f"{where}: the label at row {bad[0]} is {y[bad[0]]}, not a class number; labels must be integers 0, 1, 2, ...")
    if n and y.min() < 0:
        raise ValueError(f"{where}: the label at row {int(np.argmin(y))} is {y.min()}; class numbers start at 0")
    return y.astype(np.int64)


def _raw_chunks(x, idx: np.ndarray) -> Iterable[np.ndarray]:
    """Rows ``idx`` of ``x`` before preprocessing, read only when consumed (in chunks for a mapped file)."""
    if isinstance(x, np.memmap):
        yield from (c.numpy() for c in MappedRows(x, idx).chunks())
    else:
        yield x[idx]


class ArrayDataModule(pl.LightningDataModule):
    """Base class: subclasses implement ``load_arrays`` returning ``(x, y)`` (y may be None).

    ``x`` is an in-memory array or an ``np.memmap`` of examples x features; a memmap stays on disk and its
    splits are :class:`MappedRows`. Subclasses with a test set of their own return it from
    ``load_test_arrays``; ``fit_preprocessing`` fits what the data need (a scaler) on the training split.

    After ``setup()``: ``x_train``, ``x_val``, ``x_test`` (float32 tensors, or MappedRows for a mapped
    file), ``y_*`` (int64 tensors or None), ``x_labelled`` and ``y_labelled`` (the classifier's training
    set: the label budget's picks from the training split, or all of it), ``n_features``, ``n_classes``,
    ``image_shape`` ((C, H, W) for image data, so callbacks can draw examples and filters; None otherwise)
    and ``preprocessing`` (fitted on the training split, saved with the run; None when there is none).
    Batches are ``(x, y)`` tuples when labels exist, else ``x``. ``binarize`` applies only to the training
    batches of the unsupervised model; stored splits, validation and the classifier see the values as they are.
    """

    def __init__(
        self,
        *,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        binarize: str = "none",
        binarize_threshold: float = 0.5,
        labels_per_class: int | float | None = None,
        label_seed: int | None = None,
        on_device: bool = False,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ):
        super().__init__()
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= frac < 1.0:
                raise ValueError(f"data.{name}={frac}; it must be a fraction in [0, 1)")
        if num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers}; it must be 0 (read in the main process) or more")
        self.batch_size, self.val_fraction, self.test_fraction = batch_size, val_fraction, test_fraction
        self.split_seed = split_seed
        self.binarize, self.binarize_threshold = binarize, binarize_threshold
        self._binarize = binarizer(binarize, binarize_threshold)
        self.labels_per_class = check_budget(labels_per_class)
        self.label_seed = split_seed if label_seed is None else label_seed
        self.on_device, self.num_workers = on_device, num_workers
        # Page-locked batches for asynchronous copies to the GPU; None: whenever CUDA is available and the
        # data stay in host memory (data.on_device=false, or data that do not fit on the GPU).
        self.pin_memory = pin_memory
        self.image_shape: tuple[int, int, int] | None = None
        self.source: Path | None = None  # the file or folder read, which messages name
        self.preprocessing: Preprocessing | None = None
        self._ready = False

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def load_test_arrays(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The data set's own test split, if it has one (then test_fraction is not used)."""
        return None

    def fit_preprocessing(self, chunks: Iterable[np.ndarray], n_features: int) -> Preprocessing | None:
        """Fit on the training split's raw rows (given in chunks); its transform then applies to every split."""
        return None

    @property
    def name(self) -> str:
        return str(self.source) if self.source is not None else type(self).__name__

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        x, y = self._checked(*self.load_arrays())
        own_test = self.load_test_arrays()
        train, val, test = self._split(len(x), self.test_fraction if own_test is None else 0.0)
        parts = [(x, y, train), (x, y, val)]
        if own_test is None:
            parts.append((x, y, test))
        else:
            x_test, y_test = self._checked(*own_test)
            parts.append((x_test, y_test, np.arange(len(x_test))))
        mapped = isinstance(x, np.memmap)
        if mapped:
            # Sorted reads walk the file forward; a memory-mapped split is an index, never a copy.
            parts = [(a, b, np.sort(i)) for a, b, i in parts]
        self.preprocessing = self.fit_preprocessing(_raw_chunks(x, parts[0][2]), x.shape[1])
        transform = self.preprocessing.transform if self.preprocessing is not None else None

        def take(a, b, idx):
            if isinstance(a, np.memmap):
                rows = MappedRows(a, idx, transform)
            else:
                rows = torch.from_numpy(np.asarray(transform(a[idx]) if transform else a[idx], dtype=np.float32))
            return rows, None if b is None else torch.from_numpy(b[idx])

        (self.x_train, self.y_train), (self.x_val, self.y_val), (self.x_test, self.y_test) = [take(*p) for p in parts]
        self.n_features = x.shape[1]
        labelled = [t for t in (self.y_train, self.y_val, self.y_test) if t is not None and len(t)]
        self.n_classes = max(int(t.max()) for t in labelled) + 1 if labelled else None
        self._check_binarize()
        if self.on_device:
            self._to_device()
        self._pick_labelled()  # after the move: without a budget x_labelled is x_train, not a second copy
        self._ready = True

    def _checked(self, x, y) -> tuple[np.ndarray, np.ndarray | None]:
        if not isinstance(x, np.memmap):
            # float64 input stays float64 until preprocessing: scaling large values after a float32 cast loses them.
            x = np.asarray(x)
            x = x if x.dtype.kind == "f" else x.astype(np.float32)
        if x.ndim != 2:
            raise ValueError(f"{self.name}: expected a 2-D array of examples x features, got shape {x.shape}")
        if len(x) < 2:
            what = "no examples" if len(x) == 0 else "a single example (one row)"
            raise ValueError(f"{self.name} holds {what}; training needs many: check that it is the right file")
        if x.dtype.kind == "f":
            step = chunk_rows(x.shape[1])
            for start in range(0, len(x), step):
                finite = np.isfinite(x[start : start + step])
                if not finite.all():
                    row, col = (int(i) for i in np.argwhere(~finite)[0])
                    raise ValueError(
                        f"{self.name}: row {start + row}, column {col} holds {x[start + row, col]}, not a finite number; "
                        "clean or impute the data first"
                    )
        return x, None if y is None else check_labels(y, len(x), self.name)

    def _split(self, n: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # sklearn's rounding: ceil for the split it is asked for, the rest for the other.
        n_test = math.ceil(test_fraction * n)
        if n - n_test - math.ceil(self.val_fraction * (n - n_test)) < 1:
            raise ValueError(
                f"{self.name} has {n} examples: too few to split with data.test_fraction={test_fraction} and "
                f"data.val_fraction={self.val_fraction}; add examples or lower the fractions"
            )
        idx = np.arange(n)
        rest, test = (idx, idx[:0]) if n_test == 0 else train_test_split(idx, test_size=test_fraction, random_state=self.split_seed)
        train, val = (rest, rest[:0]) if self.val_fraction == 0 else train_test_split(
            rest, test_size=self.val_fraction, random_state=self.split_seed
        )
        return train, val, test

    def _check_binarize(self) -> None:
        if self.binarize == "stochastic" and len(self.x_train):
            lo, hi = float(self.x_train.min()), float(self.x_train.max())
            if lo < 0 or hi > 1:
                raise ValueError(
                    f"data.binarize=stochastic draws Bernoulli samples with the data as probabilities, but {self.name} "
                    f"has values in [{lo:.3g}, {hi:.3g}]: scale them to [0, 1] first (data.scaling=minmax) or use "
                    "data.binarize=threshold"
                )

    def set_label_budget(self, labels_per_class: int | float | None) -> None:
        """Give the classifier another label budget (the label-efficiency study walks through several).

        For a fixed label_seed the picks of a smaller budget are a subset of those of a larger one.
        """
        self.labels_per_class = check_budget(labels_per_class)
        self._pick_labelled()

    def _pick_labelled(self) -> None:
        self.x_labelled, self.y_labelled = self.x_train, self.y_train
        if self.labels_per_class is None:
            return
        if self.y_train is None:
            raise ValueError(
                f"data.labels_per_class={self.labels_per_class} but {self.name} has no labels; give the label "
                "column or file (data.target for csv, data.labels for npy) or set data.labels_per_class=null"
            )
        picks = pick_labelled(self.y_train.cpu().numpy(), self.labels_per_class, seed=self.label_seed)
        x, index = self.x_train, torch.from_numpy(picks).to(self.y_train.device)
        self.x_labelled = x.subset(picks) if isinstance(x, MappedRows) else x[index]
        self.y_labelled = self.y_train[index]

    def _to_device(self) -> None:
        if not torch.cuda.is_available():
            return  # the same config runs on a laptop: without a GPU the data simply stay in memory
        if isinstance(self.x_train, MappedRows):
            raise ValueError(
                f"data.on_device=true keeps the data on the GPU, but {self.name} is memory-mapped (larger than "
                "memory, or data.in_memory=false): set data.on_device=false or data.in_memory=true"
            )
        for attr in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            value = getattr(self, attr)
            if value is not None:
                setattr(self, attr, value.cuda())

    def loader(self, x, y, *, shuffle: bool, batch_size: int | None = None, transform: BatchTransform | None = None):
        """Whole-batch loader over a split (or any tensors): in-memory slices, or reads of a mapped file."""
        batch_size = batch_size or self.batch_size
        # The shuffle follows the run's seed (set by seed_everything before loaders are made), so a seed
        # sweep varies the order of the batches, while the split itself stays fixed by split_seed.
        seed = torch.initial_seed() % 2**31
        # Under DDP training loaders shard each epoch over the processes (the seed, hence the permutation,
        # is the same on every rank); evaluation loaders give every rank the whole split, so the reduced
        # metrics equal a single process's.
        rank, world_size = process_group() if shuffle else (0, 1)
        if isinstance(x, MappedRows):
            return MappedLoader(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, transform=transform,
                                num_workers=self.num_workers, rank=rank, world_size=world_size)
        tensors = (x,) if y is None else (x, y)
        pin = torch.cuda.is_available() if self.pin_memory is None else self.pin_memory
        return InMemoryLoader(*tensors, batch_size=batch_size, shuffle=shuffle, seed=seed, transform=transform,
                              rank=rank, world_size=world_size, pin_memory=pin)

    def train_dataloader(self):
        loader = self.loader(self.x_train, self.y_train, shuffle=True, transform=self._binarize)
        # A resumed run starts at a later epoch; Lightning draws the first batch before it would set the
        # epoch itself, so that epoch's order is set here, from the number Lightning's own set_epoch uses
        # (restored from the checkpoint by now; current_epoch lags by one after an end-of-epoch checkpoint).
        loader.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0)
        # A module that makes several updates per Lightning step (lit.common.SeveralUpdatesPerStep) gets its
        # batches in groups of that many: the same batches in the same order, fewer trips through Lightning's loop.
        module = self.trainer.lightning_module if self.trainer is not None else None
        n = getattr(module, "batches_per_step", 1)
        return loader if n == 1 else BatchGroups(loader, n)

    def val_dataloader(self):
        return self.loader(self.x_val, self.y_val, shuffle=False) if len(self.x_val) else []

    def test_dataloader(self):
        return self.loader(self.x_test, self.y_test, shuffle=False)
