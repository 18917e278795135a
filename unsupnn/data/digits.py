"""scikit-learn's 8x8 digits: built in, no download, the default data set."""

from __future__ import annotations

from typing import Iterable

import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import minmax_scale

from unsupnn.data.base import ArrayDataModule
from unsupnn.data.preprocessing import Preprocessing
from unsupnn.data.scaling import Scaler

SCALINGS = ("max", "minmax", "standard")


def nudge(x: np.ndarray, y: np.ndarray, side: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The data plus copies shifted by one pixel up, left, right and down (5x the examples).

    Same images, same order as scikit-learn's plot_rbm_logistic_classification example, whose
    scipy.ndimage.convolve with a one-hot 3x3 kernel is a zero-filled one-pixel shift.
    """
    images = x.reshape(-1, side, side)

    def shift(dy: int, dx: int) -> np.ndarray:
        out = np.zeros_like(images)
        src = images[:, max(-dy, 0) : side - max(dy, 0), max(-dx, 0) : side - max(dx, 0)]
        out[:, max(dy, 0) : side - max(-dy, 0), max(dx, 0) : side - max(-dx, 0)] = src
        return out.reshape(len(x), -1)

    # scikit-learn's kernels, in its order: content moves up, left, right, down.
    shifted = [shift(-1, 0), shift(0, -1), shift(0, 1), shift(1, 0)]
    return np.concatenate([x, *shifted]), np.concatenate([y] * 5)


class DigitsDataModule(ArrayDataModule):
    """1797 8x8 grey digits in [0, 1] (64 features, 10 classes).

    ``scaling="max"`` divides by 16 (the pixel range); ``"minmax"`` scales each column over the whole
    set, as scikit-learn's RBM example does; ``"standard"`` gives each column zero mean and unit variance
    on the training split (for Gaussian visible units, ``model=grbm``). ``nudge=True`` adds that example's one-pixel shifts.
    """

    def __init__(self, *, nudge: bool = False, scaling: str = "max", **kwargs):
        super().__init__(**kwargs)
        if scaling not in SCALINGS:
            raise ValueError(f"data.scaling={scaling!r}; use one of {SCALINGS}")
        self.nudge, self.scaling = nudge, scaling
        self.image_shape = (1, 8, 8)

    def load_arrays(self):
        x, y = load_digits(return_X_y=True)
        x = np.asarray(x, dtype=np.float32)
        if self.nudge:
            x, y = nudge(x, y)
        if self.scaling == "minmax":
            x = minmax_scale(x, feature_range=(0, 1))
        elif self.scaling == "max":
            x = x / 16.0
        return x, y

    def fit_preprocessing(self, chunks: Iterable[np.ndarray], n_features: int) -> Preprocessing | None:
        if self.scaling != "standard":
            return None
        # Fitted on the training split alone; saved with the run so later data can be scaled the same way.
        return Preprocessing(Scaler.fit("standard", chunks, n_features=n_features), source={"data": "digits"})
