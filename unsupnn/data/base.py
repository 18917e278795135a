"""Datamodules for data that fit in memory: load arrays once, split with a seed, serve whole batches."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.model_selection import train_test_split

from unsupnn.data.loader import InMemoryLoader


class ArrayDataModule(pl.LightningDataModule):
    """Base class: subclasses implement ``load_arrays`` returning ``(x, y)`` (y may be None).

    After ``setup()``: ``x_train``, ``x_val``, ``x_test`` (float32 tensors, one row per example),
    ``y_*`` (int64 tensors or None), ``n_features``, ``n_classes`` and ``image_shape`` ((C, H, W) for image
    data, so callbacks can draw examples and filters; None otherwise). Batches are ``(x, y)`` tuples when
    labels exist, else ``x``.
    """

    def __init__(
        self,
        *,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
    ):
        super().__init__()
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= frac < 1.0:
                raise ValueError(f"data.{name}={frac}; it must be a fraction in [0, 1)")
        self.batch_size, self.val_fraction, self.test_fraction = batch_size, val_fraction, test_fraction
        self.split_seed = split_seed
        self.image_shape: tuple[int, int, int] | None = None
        self._ready = False

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        x, y = self.load_arrays()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"{self.name}: expected a 2-D array of examples x features, got shape {x.shape}")
        if not np.isfinite(x).all():
            row = int(np.nonzero(~np.isfinite(x).all(1))[0][0])
            raise ValueError(f"{self.name}: row {row} holds NaN or infinite values; clean or impute the data first")
        parts = self._split(x, y)
        (self.x_train, self.y_train), (self.x_val, self.y_val), (self.x_test, self.y_test) = [
            (torch.from_numpy(a), None if b is None else torch.from_numpy(np.asarray(b, dtype=np.int64)))
            for a, b in parts
        ]
        self.n_features = x.shape[1]
        self.n_classes = int(y.max()) + 1 if y is not None else None
        self._ready = True

    def _split(self, x, y):
        idx = np.arange(len(x))
        rest, test = (idx, idx[:0]) if self.test_fraction == 0 else train_test_split(
            idx, test_size=self.test_fraction, random_state=self.split_seed
        )
        train, val = (rest, rest[:0]) if self.val_fraction == 0 else train_test_split(
            rest, test_size=self.val_fraction, random_state=self.split_seed
        )
        return [(x[i], None if y is None else y[i]) for i in (train, val, test)]

    def loader(self, x, y, *, shuffle: bool, batch_size: int | None = None) -> InMemoryLoader:
        tensors = (x,) if y is None else (x, y)
        return InMemoryLoader(*tensors, batch_size=batch_size or self.batch_size, shuffle=shuffle, seed=self.split_seed)

    def train_dataloader(self):
        return self.loader(self.x_train, self.y_train, shuffle=True)

    def val_dataloader(self):
        return self.loader(self.x_val, self.y_val, shuffle=False) if len(self.x_val) else []

    def test_dataloader(self):
        return self.loader(self.x_test, self.y_test, shuffle=False)
