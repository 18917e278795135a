"""A folder of images, one sub-folder per class (torchvision's ImageFolder), decoded once into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from unsupnn.data.base import ArrayDataModule


class ImageFolderDataModule(ArrayDataModule):
    """Images under ``root/<class>/...``, resized to ``size`` (one number for square images, or [H, W]),
    grey (``grey=true``, one channel) or RGB, as flattened rows in [0, 1]; labels are the class folders in
    sorted order (``classes``). Images are decoded once at setup, ``num_workers`` processes in parallel;
    training then serves whole batches from memory.
    """

    def __init__(self, *, root: str | None = None, size: int | list[int] | None = 28, grey: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.source = None if root is None else Path(root).expanduser()
        self.size = None if size is None else (size, size) if isinstance(size, int) else tuple(size)
        self.grey = grey
        self.classes: list[str] = []

    def load_arrays(self):
        if self.source is None:
            raise ValueError("data.root is not set: point it at a folder with one sub-folder of images per class")
        steps = [transforms.Grayscale(num_output_channels=1)] if self.grey else []
        steps += [transforms.Resize(self.size)] if self.size else []
        try:
            folder = datasets.ImageFolder(str(self.source), transform=transforms.Compose([*steps, transforms.ToTensor()]))
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"data.root={str(self.source)!r}: {err}; point data.root at a folder with one sub-folder of images per class"
            ) from None
        self.classes = folder.classes
        batches = DataLoader(folder, batch_size=256, num_workers=self.num_workers)
        try:
            x = torch.cat([images for images, _ in batches])
        except RuntimeError:  # torch.stack in the collate: the images differ in size
            raise ValueError(
                f"the images in {self.source} differ in size; set data.size=[H, W] (or one number) to resize them"
            ) from None
        self.image_shape = tuple(x.shape[1:])
        return x.reshape(len(x), -1).numpy(), np.asarray(folder.targets, dtype=np.int64)
