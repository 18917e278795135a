"""Test-set features with their labels (and thumbnails) for TensorBoard's embedding projector."""

from __future__ import annotations

from pathlib import Path

import torch


def log_embedding(
    log_dir: str | Path,
    features: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    images: torch.Tensor | None = None,
    image_shape: tuple[int, int, int] | None = None,
    tag: str = "test_features",
    max_points: int = 2000,
) -> Path:
    """Write up to ``max_points`` feature vectors under ``log_dir`` (a TensorBoard run of its own)."""
    from torch.utils.tensorboard import SummaryWriter

    n = min(max_points, len(features))
    thumbnails = None
    if images is not None and image_shape is not None:
        thumbnails = images[:n].detach().float().cpu().reshape(n, *image_shape)
    with SummaryWriter(str(log_dir)) as writer:
        writer.add_embedding(
            features[:n].detach().float().cpu(),
            metadata=None if labels is None else [str(int(y)) for y in labels[:n]],
            label_img=thumbnails,
            tag=tag,
        )
    return Path(log_dir)
