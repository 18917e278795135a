"""MNIST, Fashion-MNIST, KMNIST and CIFAR-10 through torchvision, decoded once into flat in-memory arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torchvision import datasets

from unsupnn.data.base import ArrayDataModule


@dataclass(frozen=True)
class VisionSet:
    cls: type
    folder: str  # where torchvision looks under data.root
    files: str  # what it looks for there, for the error message


_IDX = "{train,t10k}-{images-idx3,labels-idx1}-ubyte"
DATASETS = {
    "mnist": VisionSet(datasets.MNIST, "MNIST/raw", _IDX),
    "fashion_mnist": VisionSet(datasets.FashionMNIST, "FashionMNIST/raw", _IDX),
    "kmnist": VisionSet(datasets.KMNIST, "KMNIST/raw", _IDX),
    "cifar10": VisionSet(datasets.CIFAR10, "cifar-10-batches-py", "data_batch_1..5, test_batch, batches.meta"),
}


def to_features(images, *, grey: bool) -> tuple[np.ndarray, tuple[int, int, int]]:
    """uint8 images (N, H, W) or (N, H, W, C) as float32 rows in [0, 1], channel-major, and their (C, H, W).

    Channel-major rows reshape straight back to (C, H, W) images; ``grey`` converts colour with
    torchvision's ITU-R 601-2 luma weights.
    """
    x = torch.as_tensor(np.asarray(images)).float().div_(255)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if grey and x.shape[1] == 3:
        x = TF.rgb_to_grayscale(x)
    return x.reshape(len(x), -1).numpy(), tuple(x.shape[1:])


class VisionDataModule(ArrayDataModule):
    """A torchvision image data set (``dataset``: mnist, fashion_mnist, kmnist or cifar10) under ``root``.

    ``download=false`` (default) never touches the network: missing files stop with the folder looked in
    and both fixes. ``use_test_split`` keeps the data set's own test images as the test split (then
    ``test_fraction`` is not used); otherwise train and test images are pooled and split by the fractions.
    ``grey`` (CIFAR-10) converts colour to one grey channel; without it rows are 3x32x32 flattened.
    """

    def __init__(self, *, dataset: str = "mnist", root: str = "data", download: bool = False, grey: bool = False,
                 use_test_split: bool = True, **kwargs):
        super().__init__(**kwargs)
        if dataset not in DATASETS:
            raise ValueError(f"data.dataset={dataset!r}; use one of {sorted(DATASETS)}")
        self.dataset, self.root, self.download = dataset, Path(root).expanduser(), download
        self.grey, self.use_test_split = grey, use_test_split

    @property
    def name(self) -> str:
        return self.dataset

    def _load(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        spec = DATASETS[self.dataset]
        folder = self.root / spec.folder
        try:
            ds = spec.cls(str(self.root), train=train, download=self.download)
        except (RuntimeError, OSError) as err:
            if self.download:
                raise FileNotFoundError(
                    f"{self.dataset} could not be downloaded into {folder} ({err}); check the connection, or put "
                    f"the files ({spec.files}) there by hand and set data.download=false"
                ) from None
            if isinstance(err, OSError):
                raise
            # torchvision's RuntimeError without download means its existence check failed.
            raise FileNotFoundError(
                f"{self.dataset} not found in {folder} (looked for {spec.files}): point data.root=... at the folder "
                f"that holds {spec.folder}, or set data.download=true to fetch it"
            ) from None
        x, self.image_shape = to_features(ds.data, grey=self.grey)
        return x, np.asarray(ds.targets, dtype=np.int64)

    def load_arrays(self):
        x, y = self._load(train=True)
        if self.use_test_split:
            return x, y
        x_test, y_test = self._load(train=False)
        return np.concatenate([x, x_test]), np.concatenate([y, y_test])

    def load_test_arrays(self):
        return self._load(train=False) if self.use_test_split else None
