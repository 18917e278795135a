"""What turns a user's file into model inputs, saved with the run so later data get the same transform.

A :class:`Preprocessing` holds the column encoding of a CSV file (which columns, one-hot categories, the
label column and its classes) and the scaler fitted on the training split. It is written as JSON
(``preprocessing.json`` in the run directory, no pickle) and read back with :func:`load_preprocessing`::

    prep = load_preprocessing("outputs/train/runs/<run>/preprocessing.json")
    x, y = prep.read_csv("new.csv")      # same columns, encoding and scaling as in training
    x = prep.transform(array)            # arrays (npy data): the fitted scaling alone
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unsupnn.data.scaling import Scaler

FORMAT = "unsupnn.preprocessing"
FORMAT_VERSION = 1


@dataclass
class Table:
    """A CSV file as strings: column names, rows, and each row's line number in the file (for errors)."""

    path: Path
    names: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, name: str) -> list[str]:
        j = self.names.index(name)
        return [row[j] for row in self.rows]


def read_table(path: str | Path, *, header: bool = True, delimiter: str = ",") -> Table:
    """Read a CSV file into strings, refusing empty files and rows with the wrong number of fields."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data.path={str(path)!r}: no such file; give the path of an existing CSV file")
    with path.open(newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        rows, lines = [], []
        for row in reader:
            if row and not (len(row) == 1 and not row[0].strip()):  # blank lines are not data
                rows.append(row)
                lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{path} is empty: a CSV file needs a header line and rows of data")
    names = rows[0] if header else [str(j) for j in range(len(rows[0]))]
    names = [name.strip() for name in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: the header names the columns {repeated} more than once; give every column its own name")
    if header:
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise ValueError(f"{path} has a header line but no rows of data")
    for row, line in zip(rows, lines):
        if len(row) != len(names):
            raise ValueError(
                f"{path} line {line} has {len(row)} fields but the header has {len(names)} columns; "
                f"fix that line (a missing or extra {delimiter!r}?)"
            )
    return Table(path, names, rows, lines)


def _cell_number(table: Table, name: str, row: int, value: str) -> float:
    where = f"{table.path} line {table.lines[row]}, column {name!r}"
    if not value.strip():
        raise ValueError(f"{where} is empty (a missing value); fill it in or remove the row (missing values are not imputed)")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(
            f"{where}: {value!r} is not a number; fix the value, drop the column (data.drop=[{name}]) "
            f"or one-hot encode it (data.categorical=[{name}])"
        ) from None
    if not np.isfinite(number):
        raise ValueError(f"{where} holds {value.strip()!r}, not a finite number; replace the value or remove the row")
    return number


def _as_numbers(table: Table, name: str, values: list[str]) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=np.float64)
        if np.isfinite(out).all():
            return out
    except ValueError:
        pass
    # The slow path, cell by cell, finds the first bad value and names its line.
    return np.asarray([_cell_number(table, name, i, v) for i, v in enumerate(values)])


def _column_name(table: Table, key: str | int) -> str:
    """A column given by name, or by position (an int) when the file has no header or the name is not found."""
    if isinstance(key, int) and str(key) not in table.names:
        if not 0 <= key < len(table.names):
            raise ValueError(f"column {key} is out of range: {table.path} has {len(table.names)} columns")
        return table.names[key]
    return str(key)


def _categories(values: list[str]) -> list[str]:
    """Distinct values, numerically ordered when they are all numbers (so '10' follows '9')."""
    distinct = sorted(set(values))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct


@dataclass
class Preprocessing:
    """Column encoding (CSV) and fitted scaling; see the module docstring for use."""

    scaler: Scaler
    columns: list[dict] | None = None  # CSV: [{"name": ...} or {"name": ..., "categories": [...]}], input order
    target: str | None = None
    classes: list[str] | None = None  # a categorical label column: class i is classes[i]
    source: dict = field(default_factory=dict)

    @classmethod
    def plan(cls, table: Table, *, target: str | int | None, drop: list[str], categorical: list[str]) -> Preprocessing:
        """The encoding of ``table``'s columns (categories from the whole file); the scaler is fitted later."""
        target = None if target is None else _column_name(table, target)
        drop = [_column_name(table, n) for n in drop]
        categorical = [_column_name(table, n) for n in categorical]
        for option, names in (("data.target", [] if target is None else [target]), ("data.drop", drop), ("data.categorical", categorical)):
            unknown = [n for n in names if n not in table.names]
            if unknown:
                raise ValueError(f"{option} names {unknown}, not columns of {table.path}; its columns are {table.names}")
        columns = [
            {"name": n, "categories": _categories(table.column(n))} if n in categorical else {"name": n}
            for n in table.names
            if n != target and n not in drop
        ]
        if not columns:
            raise ValueError(f"{table.path} has no feature columns left after data.target and data.drop")
        classes = _categories(table.column(target)) if target in categorical else None
        return cls(Scaler("none", np.zeros(0), np.ones(0)), columns, target, classes, {"file": str(table.path.resolve())})

    def passthrough(self) -> np.ndarray:
        """Per encoded feature: True for one-hot columns, which scaling leaves as they are."""
        return np.concatenate([[True] * len(c["categories"]) if "categories" in c else [False] for c in self.columns])

    def encode(self, table: Table, *, need_target: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Numbers from strings, before scaling: (features float64, integer labels or None).

        A category not in the saved list one-hot encodes to all zeros.
        """
        missing = [c["name"] for c in self.columns if c["name"] not in table.names]
        if missing:
            raise ValueError(f"{table.path} lacks the columns {missing} that the model was trained on")
        parts = []
        for c in self.columns:
            values = table.column(c["name"])
            if "categories" in c:
                parts.append(np.asarray(values)[:, None] == np.asarray(c["categories"])[None, :])
            else:
                parts.append(_as_numbers(table, c["name"], values)[:, None])
        x = np.concatenate(parts, axis=1).astype(np.float64)
        if self.target is None or (self.target not in table.names and not need_target):
            return x, None
        if self.target not in table.names:
            raise ValueError(f"{table.path} has no label column {self.target!r}")
        return x, self._labels(table)

    def _labels(self, table: Table) -> np.ndarray:
        values = table.column(self.target)
        if self.classes is not None:
            index = {c: i for i, c in enumerate(self.classes)}
            unknown = sorted(set(values) - set(index))
            if unknown:
                raise ValueError(f"{table.path} column {self.target!r} has classes {unknown[:5]} not seen in training")
            return np.asarray([index[v] for v in values], dtype=np.int64)
        for i, value in enumerate(values):
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not (np.isfinite(number) and number == int(number) and number >= 0):
                raise ValueError(
                    f"{table.path} line {table.lines[i]}, column {self.target!r}: label {value!r} is not a class number "
                    f"(0, 1, 2, ...); fix it, or list the column in data.categorical to number its distinct values"
                )
        return np.asarray(values, dtype=np.float64).astype(np.int64)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The fitted scaling of encoded (or, for arrays, raw) features: float32."""
        return self.scaler.transform(x)

    def read_csv(self, path: str | Path, *, header: bool = True, delimiter: str = ",") -> tuple[np.ndarray, np.ndarray | None]:
        """A CSV file with the training columns, encoded and scaled as in training; labels when it has them."""
        if self.columns is None:
            raise ValueError("this preprocessing was fitted on an array file, not a CSV: use transform(array)")
        x, y = self.encode(read_table(path, header=header, delimiter=delimiter), need_target=False)
        return self.transform(x), y

    def to_dict(self) -> dict:
        """The JSON document that :func:`load_preprocessing` reads (a run saves it as preprocessing.json)."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "source": self.source, "columns": self.columns,
            "target": self.target, "classes": self.classes, "scaler": self.scaler.to_dict(),
        }


def load_preprocessing(path: str | Path) -> Preprocessing:
    """Read a ``preprocessing.json`` written with a run (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no preprocessing file at {path}; runs on CSV or scaled npy data write one")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not an unsupnn preprocessing file (format {data.get('format')!r})")
    if data["format_version"] > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {data['format_version']}; upgrade unsupnn to read it")
    return Preprocessing(Scaler.from_dict(data["scaler"]), data["columns"], data["target"], data["classes"], data["source"])
