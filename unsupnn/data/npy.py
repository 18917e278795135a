"""A .npy or .npz array file, memory-mapped so that a file larger than memory still trains."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from unsupnn.data.base import ArrayDataModule, check_labels
from unsupnn.data.preprocessing import Preprocessing
from unsupnn.data.scaling import Scaler, check_scaling

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _unreadable(path: Path, err: Exception) -> ValueError:
    return ValueError(f"{path} is not a readable array file of numbers ({err}); save one with np.save or np.savez")


def _load_whole(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path) as arrays:
            return arrays[key]
    except (EOFError, OSError, ValueError) as err:
        raise _unreadable(path, err) from None


def _open_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (EOFError, OSError, ValueError) as err:
        raise _unreadable(path, err) from None


def _open_npz(path: Path, key: str) -> np.ndarray:
    """Array ``key`` of an .npz archive, memory-mapped in place when it is stored uncompressed (np.savez)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            info = archive.getinfo(f"{key}.npy") if f"{key}.npy" in names else None
    except (zipfile.BadZipFile, OSError) as err:
        raise _unreadable(path, err) from None
    if info is None:
        keys = [n.removesuffix(".npy") for n in names]
        raise ValueError(f"{path} has no array {key!r}; its arrays are {keys}: set data.x_key to one of them")
    if info.compress_type != zipfile.ZIP_STORED:
        return _load_whole(path, key)
    with path.open("rb") as f:
        # An uncompressed member (np.savez) is a .npy file inside the zip: 30 fixed bytes of local header,
        # the member's name and extra field, then the .npy bytes, which can be mapped in place.
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version not in _HEADER_READERS:
            return _load_whole(path, key)
        shape, fortran_order, dtype = _HEADER_READERS[version](f)
        offset = f.tell()
    if 0 in shape:  # nothing to map
        return _load_whole(path, key)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


def _fits_in_memory(n_values: int) -> bool:
    """Room for a float32 copy and its splits (about three copies) in the memory free now."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no such figure on this platform
        return True
    return 3 * 4 * n_values < free


class NpyDataModule(ArrayDataModule):
    """Examples are the rows of the array at ``path`` (trailing dimensions flattened; (N, H, W) is an image).

    ``.npz`` archives hold the examples under ``x_key`` and, if present, the labels under ``y_key``; for
    ``.npy`` files, ``labels`` names a separate .npy file of labels (optional). ``in_memory``: ``auto``
    (default) loads the array when about three float32 copies fit in the free memory and memory-maps it
    otherwise; ``false`` always maps it (uncompressed files only), ``true`` always loads it.
    ``scaling`` (none, minmax or standard) is fitted on the training split and saved with the run.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        labels: str | None = None,
        x_key: str = "x",
        y_key: str | None = "y",
        scaling: str = "none",
        in_memory: bool | str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if in_memory not in (True, False, "auto"):
            raise ValueError(f"data.in_memory={in_memory!r}; use auto, true or false")
        self.source = None if path is None else Path(path).expanduser()
        self.labels = None if labels is None else Path(labels).expanduser()
        self.x_key, self.y_key, self.in_memory = x_key, y_key, in_memory
        self.scaling = check_scaling(scaling)

    def load_arrays(self):
        if self.source is None:
            raise ValueError("data.path is not set: give the array file on the command line, e.g. data=npy data.path=x.npy")
        if self.source.suffix not in (".npy", ".npz"):
            raise ValueError(f"data.path={str(self.source)!r} is not a .npy or .npz file")
        if not self.source.is_file():
            raise FileNotFoundError(f"data.path={str(self.source)!r}: no such file; give the path of an existing .npy/.npz file")
        x = _open_npz(self.source, self.x_key) if self.source.suffix == ".npz" else _open_npy(self.source)
        if x.ndim < 2 or x.dtype.kind not in "biuf":
            raise ValueError(
                f"{self.source} holds a {x.ndim}-D array of {x.dtype}; expected numbers, one example per row "
                "(shape examples x features, or examples x height x width)"
            )
        self.image_shape = (1, *x.shape[1:]) if x.ndim == 3 else None
        if x.ndim > 2 and len(x):
            x = x.reshape(len(x), -1)
        keep_mapped = isinstance(x, np.memmap) and x.flags.c_contiguous and (
            self.in_memory is False or (self.in_memory == "auto" and not _fits_in_memory(x.size))
        )
        if self.in_memory is False and not keep_mapped:
            raise ValueError(
                f"data.in_memory=false but {self.source} cannot be memory-mapped (compressed or Fortran-ordered): "
                "save it with np.save or np.savez of a C-ordered array, or set data.in_memory=auto"
            )
        return (x if keep_mapped else np.asarray(x)), self._load_labels(len(x))

    def _load_labels(self, n: int) -> np.ndarray | None:
        if self.labels is not None:
            if self.labels.suffix != ".npy":
                raise ValueError(f"data.labels={str(self.labels)!r} is not a .npy file; labels inside an .npz go by data.y_key")
            if not self.labels.is_file():
                raise FileNotFoundError(f"data.labels={str(self.labels)!r}: no such file; give the .npy file of labels or null")
            return check_labels(_open_npy(self.labels), n, str(self.labels))
        if self.source.suffix == ".npz" and self.y_key is not None:
            with np.load(self.source) as arrays:
                if self.y_key in arrays.files:
                    return check_labels(arrays[self.y_key], n, f"{self.source} array {self.y_key!r}")
        return None

    def fit_preprocessing(self, chunks: Iterable[np.ndarray], n_features: int) -> Preprocessing | None:
        if self.scaling == "none":
            return None
        return Preprocessing(Scaler.fit(self.scaling, chunks, n_features=n_features), source={"file": str(self.source.resolve())})
