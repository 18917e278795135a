"""Array files: .npy and .npz round trips, memory-mapped splits that never copy the file, bad arrays."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
import torch

from conftest import make_cfg
from unsupnn import tasks
from unsupnn.data import MappedRows, NpyDataModule, mapped


def id_array(n: int = 200, d: int = 6) -> np.ndarray:
    """Column 0 is the row number (to trace rows through splits), the rest uniform noise in [0, 1)."""
    rng = np.random.default_rng(0)
    x = rng.random((n, d)).astype(np.float32)
    x[:, 0] = np.arange(n)
    return x


def rows_by_id(x: torch.Tensor) -> torch.Tensor:
    return x[x[:, 0].argsort()]


@pytest.mark.parametrize("in_memory", [True, False])
def test_npy_round_trip_in_memory_and_mapped(tmp_path, in_memory):
    x = id_array()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(200) % 4)
    dm = NpyDataModule(path=str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"), in_memory=in_memory)
    dm.setup()
    assert isinstance(dm.x_train, MappedRows) is not in_memory
    assert (len(dm.x_train), len(dm.x_val), len(dm.x_test)) == (144, 16, 40) and dm.n_classes == 4
    everything = torch.cat([dm.x_train[:], dm.x_val[:], dm.x_test[:]])
    np.testing.assert_array_equal(rows_by_id(everything).numpy(), x)
    assert torch.equal(dm.y_train, dm.x_train[:][:, 0].long() % 4)


def test_mapped_splits_hold_the_same_rows_as_in_memory_ones(tmp_path):
    np.save(tmp_path / "x.npy", id_array())
    kept, mapped_dm = (NpyDataModule(path=str(tmp_path / "x.npy"), in_memory=m, scaling="standard") for m in (True, False))
    kept.setup(), mapped_dm.setup()
    for split in ("x_train", "x_val", "x_test"):
        torch.testing.assert_close(rows_by_id(getattr(mapped_dm, split)[:]), rows_by_id(getattr(kept, split)))
    torch.testing.assert_close(mapped_dm.x_train.mean(0), kept.x_train.mean(0))
    assert float(mapped_dm.x_train.min()) == float(kept.x_train.min())
    for field in ("offset", "scale"):  # the same fit, up to the order of summation
        np.testing.assert_allclose(getattr(mapped_dm.preprocessing.scaler, field), getattr(kept.preprocessing.scaler, field))


def test_mapped_loader_serves_every_row_once_per_epoch_with_its_label(tmp_path):
    np.save(tmp_path / "x.npy", id_array(103))
    np.save(tmp_path / "y.npy", np.arange(103) % 5)
    dm = NpyDataModule(path=str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"), in_memory=False,
                       test_fraction=0.0, val_fraction=0.0, batch_size=10)
    dm.setup()
    loader = dm.train_dataloader()
    assert len(loader) == 11
    orders = []
    for _ in range(2):
        batches = list(loader)
        ids = torch.cat([bx[:, 0] for bx, _ in batches]).long()
        assert sorted(ids.tolist()) == list(range(103))
        assert torch.equal(torch.cat([by for _, by in batches]), ids % 5)
        orders.append(ids)
    assert not torch.equal(*orders)


def test_mapped_loader_reads_ahead_in_worker_processes(tmp_path):
    np.save(tmp_path / "x.npy", id_array(50))
    dm = NpyDataModule(path=str(tmp_path / "x.npy"), in_memory=False, num_workers=1, batch_size=8,
                       test_fraction=0.0, val_fraction=0.0)
    dm.setup()
    ids = torch.cat([b[:, 0] for b in dm.train_dataloader()]).long()
    assert sorted(ids.tolist()) == list(range(50))


def test_mapped_rows_travel_to_spawned_workers_as_coordinates_not_data(tmp_path):
    np.save(tmp_path / "x.npy", id_array(5000, 20))
    dm = NpyDataModule(path=str(tmp_path / "x.npy"), in_memory=False, scaling="minmax")
    dm.setup()
    packed = pickle.dumps(dm.x_train)
    assert len(packed) < 100_000 < dm.x_train.numel() * 4  # the index and the scaler, not the 400 kB of rows
    assert torch.equal(pickle.loads(packed)[10:20], dm.x_train[10:20])


def test_splitting_a_mapped_file_does_not_copy_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mapped, "CHUNK_BYTES", 2**20)  # full passes read 1 MiB at a time
    x = np.random.default_rng(0).random((100_000, 100), dtype=np.float32)  # 40 MB
    np.save(tmp_path / "big.npy", x)
    del x

    def peak_bytes(in_memory: bool) -> int:
        tracemalloc.start()
        dm = NpyDataModule(path=str(tmp_path / "big.npy"), in_memory=in_memory, scaling="minmax")
        dm.setup()
        dm.x_train.mean(0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    assert peak_bytes(in_memory=False) < 10 * 2**20
    assert peak_bytes(in_memory=True) > 40 * 2**20  # numpy's allocations are traced: the check can fail


def test_npz_archives_stored_are_mapped_and_compressed_are_loaded(tmp_path):
    x = id_array(60).reshape(60, 2, 3)  # (N, H, W): an image array
    np.savez(tmp_path / "plain.npz", x=x, y=np.arange(60) % 3)
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=np.arange(60) % 3)
    dm = NpyDataModule(path=str(tmp_path / "plain.npz"), in_memory=False, test_fraction=0.0, val_fraction=0.0)
    dm.setup()
    assert isinstance(dm.x_train, MappedRows) and dm.image_shape == (1, 2, 3) and dm.n_features == 6
    np.testing.assert_array_equal(rows_by_id(dm.x_train[:]).numpy(), x.reshape(60, 6))
    assert dm.n_classes == 3
    packed = NpyDataModule(path=str(tmp_path / "packed.npz"), test_fraction=0.0, val_fraction=0.0)
    packed.setup()
    assert torch.equal(rows_by_id(packed.x_train), rows_by_id(dm.x_train[:]))
    with pytest.raises(ValueError, match=r"cannot be memory-mapped.*data.in_memory=auto"):
        NpyDataModule(path=str(tmp_path / "packed.npz"), in_memory=False).setup()
    with pytest.raises(ValueError, match=r"has no array 'x'; its arrays are \['a'\]: set data.x_key"):
        np.savez(tmp_path / "other.npz", a=x)
        NpyDataModule(path=str(tmp_path / "other.npz")).setup()


def test_training_reads_a_mapped_file(tmp_path):
    np.save(tmp_path / "x.npy", (id_array(300, 12) % 1).round())
    np.save(tmp_path / "y.npy", np.arange(300) % 3)
    cfg = make_cfg("pretrain", ["data=npy", f"data.path={tmp_path / 'x.npy'}", f"data.labels={tmp_path / 'y.npy'}",
                                "data.in_memory=false", "data.labels_per_class=4", "data.binarize=stochastic",
                                "trainer.max_epochs=1", "classifier.max_epochs=1", "model.n_hidden=5", "logger=none",
                                "classifier.methods=[probe,raw_logistic,features_logistic]"], tmp_path / "run")
    results = tasks.pretrain(cfg)
    assert [r["method"] for r in results["rows"]] == ["probe", "raw_logistic", "features_logistic"]
    assert results["labels"] == {"labels_per_class": 4, "n_labelled": 12}


def write_npy(path, array) -> str:
    np.save(path, array)
    return str(path)


@pytest.mark.parametrize("case", ["nan", "no rows", "one row", "1-D", "text", "empty file", "not an array"])
def test_bad_arrays_stop_with_one_line_naming_the_file(tmp_path, case):
    path = tmp_path / "bad.npy"
    x = id_array(10)
    if case == "nan":
        x[7, 3] = np.nan
        pattern = r"row \d+, column 3 holds nan"
    elif case == "no rows":
        x, pattern = x[:0], "holds no examples"
    elif case == "one row":
        x, pattern = x[:1], r"a single example \(one row\)"
    elif case == "1-D":
        x, pattern = x[:, 0], "1-D array"
    elif case == "text":
        x, pattern = np.array([["a", "b"], ["c", "d"]]), "expected numbers"
    if case == "empty file":
        path.write_bytes(b"")
        pattern = "not a readable array file"
    elif case == "not an array":
        path.write_text("1,2,3\n")
        pattern = "not a readable array file"
    else:
        np.save(path, x)
    with pytest.raises(ValueError, match=pattern) as err:
        NpyDataModule(path=str(path), in_memory=False, test_fraction=0.0, val_fraction=0.0).setup()
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("labels,pattern", [
    (np.array([0, 1, 2.5, 0, 1, 1, 0, 0, 1, 1]), r"label at row 2 is 2.5, not a class number"),
    (np.array([0, 1, -1, 0, 1, 1, 0, 0, 1, 1]), r"label at row 2 is -1; class numbers start at 0"),
    (np.array(["a"] * 10), r"not class numbers"),
    (np.arange(9), r"shape \(9,\) but there are 10 examples"),
])
def test_bad_labels_name_the_labels_file_and_row(tmp_path, labels, pattern):
    x, y = write_npy(tmp_path / "x.npy", id_array(10)), write_npy(tmp_path / "y.npy", labels)
    with pytest.raises(ValueError, match=pattern) as err:
        NpyDataModule(path=x, labels=y).setup()
    assert y in str(err.value)


def test_bad_npy_options(tmp_path):
    with pytest.raises(ValueError, match="data.path is not set"):
        NpyDataModule().setup()
    with pytest.raises(FileNotFoundError, match="no such file"):
        NpyDataModule(path=str(tmp_path / "absent.npy")).setup()
    with pytest.raises(ValueError, match="not a .npy or .npz file"):
        NpyDataModule(path=str(tmp_path / "x.csv")).setup()
    with pytest.raises(ValueError, match="data.in_memory"):
        NpyDataModule(in_memory="sometimes")
