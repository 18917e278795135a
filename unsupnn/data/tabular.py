"""A CSV file of numbers (optionally a label column and one-hot encoded text columns)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from unsupnn.data.base import ArrayDataModule
from unsupnn.data.preprocessing import Preprocessing, read_table
from unsupnn.data.scaling import Scaler, check_scaling


class CSVDataModule(ArrayDataModule):
    """Rows of ``path`` as examples; every column but ``target`` and ``drop`` is a feature.

    Feature columns must hold numbers, except those listed in ``categorical``, which are one-hot encoded
    (categories from the whole file). Listing the ``target`` there numbers its distinct values as classes.
    ``scaling`` (minmax, standard or none) is fitted on the training split only; the encoding and the
    scaling are saved with the run (``preprocessing.json``) and apply to new files with
    ``unsupnn.data.load_preprocessing(path).read_csv(new_file)``.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        target: str | int | None = None,
        drop: Iterable[str | int] = (),
        categorical: Iterable[str | int] = (),
        scaling: str = "minmax",
        header: bool = True,
        delimiter: str = ",",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source = None if path is None else Path(path).expanduser()
        self.target, self.drop, self.categorical = target, list(drop), list(categorical)
        self.scaling, self.header, self.delimiter = check_scaling(scaling), header, delimiter
        self._encoding: Preprocessing | None = None

    def load_arrays(self):
        if self.source is None:
            raise ValueError("data.path is not set: give the CSV file on the command line, e.g. data=csv data.path=my.csv")
        table = read_table(self.source, header=self.header, delimiter=self.delimiter)
        self._encoding = Preprocessing.plan(table, target=self.target, drop=self.drop, categorical=self.categorical)
        return self._encoding.encode(table)

    def fit_preprocessing(self, chunks: Iterable[np.ndarray], n_features: int) -> Preprocessing:
        self._encoding.scaler = Scaler.fit(self.scaling, chunks, n_features=n_features, passthrough=self._encoding.passthrough())
        return self._encoding
