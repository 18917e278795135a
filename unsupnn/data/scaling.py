"""Per-column scaling fitted on the training split, streamed in chunks, stored as plain JSON numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

SCALINGS = ("minmax", "standard", "none")


def check_scaling(scaling: str) -> str:
    if scaling not in SCALINGS:
        raise ValueError(
            f"data.scaling={scaling!r}; use minmax (to [0, 1], what Bernoulli units need), standard (zero mean, "
            "unit variance, for Gaussian units) or none"
        )
    return scaling


@dataclass
class Scaler:
    """``(x - offset) / scale`` per column; ``minmax`` also clips to [0, 1].

    The clip matters for data seen after fitting: a validation or test value beyond the training range
    would otherwise fall outside [0, 1], which Bernoulli visible units cannot model.
    """

    kind: str
    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, chunks: Iterable[np.ndarray], *, n_features: int, passthrough: np.ndarray | None = None) -> Scaler:
        """Fit on row chunks of the training split (a file larger than memory is read once, in pieces).

        ``passthrough`` marks columns left as they are (one-hot columns are already in [0, 1]).
        """
        check_scaling(kind)
        offset, scale = np.zeros(n_features), np.ones(n_features)
        if kind == "minmax":
            lo, hi = np.full(n_features, np.inf), np.full(n_features, -np.inf)
            for chunk in chunks:
                lo, hi = np.minimum(lo, chunk.min(0)), np.maximum(hi, chunk.max(0))
            offset, scale = lo, hi - lo
        elif kind == "standard":
            n, mean, m2 = 0, np.zeros(n_features), np.zeros(n_features)
            for chunk in chunks:
                # Chan et al.'s pairwise update of (count, mean, sum of squared deviations): no cancellation
                # from E[x^2] - E[x]^2 when the mean is large next to the spread.
                chunk = np.asarray(chunk, dtype=np.float64)
                k, chunk_mean = len(chunk), chunk.mean(0)
                delta = chunk_mean - mean
                m2 += ((chunk - chunk_mean) ** 2).sum(0) + delta**2 * n * k / (n + k)
                mean += delta * k / (n + k)
                n += k
            offset, scale = mean, np.sqrt(m2 / max(n, 1))
        # A constant column has no spread to divide by: it maps to 0.
        scale = np.where(scale > 0, scale, 1.0)
        if passthrough is not None:
            offset, scale = np.where(passthrough, 0.0, offset), np.where(passthrough, 1.0, scale)
        return cls(kind, np.asarray(offset, dtype=np.float64), np.asarray(scale, dtype=np.float64))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of ``x`` (rows x the columns this scaler was fitted on)."""
        if x.shape[-1] != len(self.offset):
            raise ValueError(f"the scaler was fitted on {len(self.offset)} columns but the data have {x.shape[-1]}")
        out = (np.asarray(x, dtype=np.float64) - self.offset) / self.scale
        if self.kind == "minmax":
            np.clip(out, 0.0, 1.0, out=out)
        return out.astype(np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        return cls(check_scaling(data["kind"]), np.asarray(data["offset"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64))
