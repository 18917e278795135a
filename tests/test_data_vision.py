"""Image data: MNIST-format IDX files read by the real torchvision code, real MNIST when present, ImageFolder."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from unsupnn.data import ImageFolderDataModule, VisionDataModule
from unsupnn.data.vision import DATASETS, to_features

SHARED_MNIST = REPO.parent / "shared" / "data"


def write_idx(path, array) -> None:
    """The IDX format of MNIST: big-endian magic (2051 images, 2049 labels), the sizes, then the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 2051 if array.ndim == 3 else 2049))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def write_mnist_like(root, folder: str, n_train: int = 30, n_test: int = 10, side: int = 5) -> None:
    """Image i holds the value i in every pixel (so rows can be traced back), label i % 3."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, first, n in (("train", 0, n_train), ("t10k", 100, n_test)):
        values = np.arange(first, first + n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.repeat(values, side * side).reshape(n, side, side))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", values % 3)


@pytest.mark.parametrize("dataset,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_idx_files_load_through_torchvision_with_the_official_test_split(tmp_path, dataset, folder):
    write_mnist_like(tmp_path, folder)
    dm = VisionDataModule(dataset=dataset, root=str(tmp_path), val_fraction=0.2, batch_size=4)
    dm.setup()
    assert (len(dm.x_train), len(dm.x_val), len(dm.x_test)) == (24, 6, 10)
    assert dm.n_features == 25 and dm.image_shape == (1, 5, 5) and dm.n_classes == 3
    assert dm.x_train.dtype == torch.float32 and dm.y_train.dtype == torch.int64
    ids = lambda x: (x[:, 0] * 255).round().long()  # noqa: E731
    assert ids(dm.x_test).tolist() == list(range(100, 110))  # the test file, in its order
    assert sorted(ids(torch.cat([dm.x_train, dm.x_val])).tolist()) == list(range(30))
    assert torch.equal(dm.y_train, ids(dm.x_train) % 3)  # labels stay with their images
    assert torch.all(dm.x_train == dm.x_train[:, :1])  # each image's pixels were flattened together


def test_pooled_split_when_the_own_test_split_is_not_used(tmp_path):
    write_mnist_like(tmp_path, "MNIST")
    dm = VisionDataModule(root=str(tmp_path), use_test_split=False, test_fraction=0.25, val_fraction=0.0)
    dm.setup()
    assert (len(dm.x_train), len(dm.x_test)) == (30, 10)
    ids = sorted((torch.cat([dm.x_train, dm.x_test])[:, 0] * 255).round().long().tolist())
    assert ids == list(range(30)) + list(range(100, 110))


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_missing_files_name_the_folder_and_both_fixes(tmp_path, dataset):
    with pytest.raises(FileNotFoundError) as err:
        VisionDataModule(dataset=dataset, root=str(tmp_path)).setup()
    message = str(err.value)
    assert str(tmp_path / DATASETS[dataset].folder) in message
    assert "data.root=" in message and "data.download=true" in message and "\n" not in message
    assert not any(tmp_path.iterdir())  # nothing was written or downloaded


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="mnist"):
        VisionDataModule(dataset="mnits")


def test_colour_images_are_flattened_channel_by_channel_or_made_grey():
    rgb = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 2] = 255, 51  # red everywhere, some blue
    colour, shape = to_features(rgb, grey=False)
    assert shape == (3, 2, 2) and colour.shape == (1, 12)
    np.testing.assert_allclose(colour[0], [1.0] * 4 + [0.0] * 4 + [0.2] * 4)
    grey, shape = to_features(rgb, grey=True)
    assert shape == (1, 2, 2)
    np.testing.assert_allclose(grey[0], [0.2989 + 0.114 * 0.2] * 4, rtol=1e-3)


@pytest.mark.skipif(not (SHARED_MNIST / "MNIST" / "raw").is_dir(), reason="real MNIST is not at ../shared/data")
def test_real_mnist_when_present():
    dm = VisionDataModule(root=str(SHARED_MNIST), val_fraction=0.0, labels_per_class=10)
    dm.setup()
    assert dm.x_train.shape == (60000, 784) and dm.x_test.shape == (10000, 784)
    assert 0.0 == float(dm.x_train.min()) and float(dm.x_train.max()) == 1.0
    assert dm.y_train.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert dm.y_test.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert dm.y_labelled.bincount().tolist() == [10] * 10


def write_images(root, sizes: dict[str, list[tuple[int, int]]]) -> None:
    for cls, shapes in sizes.items():
        (root / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(shapes):
            Image.new("RGB", (w, h), color=(200, 40 * i, 0)).save(root / cls / f"{i}.png")


def test_image_folder_resizes_greys_and_labels_by_folder(tmp_path):
    write_images(tmp_path, {"cat": [(6, 6), (9, 7), (8, 8)], "dog": [(5, 10), (7, 7), (6, 6), (12, 12)]})
    dm = ImageFolderDataModule(root=str(tmp_path), size=4, test_fraction=0.0, val_fraction=0.0)
    dm.setup()
    assert dm.x_train.shape == (7, 16) and dm.image_shape == (1, 4, 4)
    assert dm.classes == ["cat", "dog"] and sorted(dm.y_train.tolist()) == [0, 0, 0, 1, 1, 1, 1]
    assert 0.0 <= float(dm.x_train.min()) and float(dm.x_train.max()) <= 1.0
    rgb = ImageFolderDataModule(root=str(tmp_path), size=[3, 5], grey=False, test_fraction=0.0, val_fraction=0.0)
    rgb.setup()
    assert rgb.image_shape == (3, 3, 5) and rgb.n_features == 45


def test_image_folder_errors(tmp_path):
    write_images(tmp_path / "mixed", {"a": [(6, 6), (9, 7)], "b": [(6, 6)]})
    with pytest.raises(ValueError, match=r"differ in size.*data\.size"):
        ImageFolderDataModule(root=str(tmp_path / "mixed"), size=None).setup()
    with pytest.raises(FileNotFoundError, match="data.root"):
        ImageFolderDataModule(root=str(tmp_path / "absent")).setup()
    with pytest.raises(ValueError, match="data.root is not set"):
        ImageFolderDataModule().setup()
