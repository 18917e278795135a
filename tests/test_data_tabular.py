"""CSV files: encoding, scaling fitted on the training split, the saved preprocessing, and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_cfg, run_cli
from unsupnn import tasks
from unsupnn.data import CSVDataModule, load_preprocessing
from unsupnn.data.scaling import Scaler


def write_csv(path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def table_rows(n: int = 60) -> list[str]:
    rng = np.random.default_rng(0)
    colours = ["red", "green", "blue"]
    return [f"{i},{rng.normal(50, 10):.4f},{rng.integers(0, 1000)},{colours[i % 3]},{i % 2}" for i in range(n)]


@pytest.fixture
def table(tmp_path) -> str:
    return write_csv(tmp_path / "t.csv", "id,height,count,colour,label", table_rows())


def test_csv_round_trip_with_labels_one_hot_and_dropped_columns(table):
    raw = CSVDataModule(path=table, target="label", drop=["id"], categorical=["colour"], scaling="none")
    raw.setup()
    assert raw.n_features == 2 + 3 and raw.n_classes == 2
    assert (len(raw.x_train), len(raw.x_val), len(raw.x_test)) == (43, 5, 12)
    onehot = raw.x_train[:, 2:]
    assert torch.equal(onehot.sum(1), torch.ones(43)) and set(onehot.unique().tolist()) == {0.0, 1.0}
    lines = [r.split(",") for r in table_rows()]
    by_height = {round(float(r[1]), 4): r for r in lines}
    for x, y in zip(raw.x_train, raw.y_train):  # every row keeps its own values and label
        row = by_height[round(float(x[0]), 4)]
        assert (float(x[1]), int(y)) == (float(row[2]), int(row[4]))
        assert ["blue", "green", "red"][int(x[2:].argmax())] == row[3]


def test_minmax_is_fitted_on_the_training_split_only(table):
    raw = CSVDataModule(path=table, target="label", drop=["id", "colour"], scaling="none")
    scaled = CSVDataModule(path=table, target="label", drop=["id", "colour"], scaling="minmax")
    raw.setup(), scaled.setup()
    lo, hi = raw.x_train.min(0).values, raw.x_train.max(0).values
    everything = torch.cat([raw.x_train, raw.x_val, raw.x_test])
    # The test can tell train-only from whole-file fitting: the file's extremes are not all in the training split.
    assert not (torch.equal(lo, everything.min(0).values) and torch.equal(hi, everything.max(0).values))
    torch.testing.assert_close(scaled.x_train, (raw.x_train - lo) / (hi - lo))
    torch.testing.assert_close(scaled.x_test, ((raw.x_test - lo) / (hi - lo)).clamp(0, 1))  # clipped for Bernoulli units


def test_scaler_streamed_in_chunks_matches_scikit_learn():
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    x = np.random.default_rng(1).normal(1e4, 3.0, size=(500, 4))
    x[:, 3] = 7.0  # a constant column
    for kind, reference in (("minmax", MinMaxScaler()), ("standard", StandardScaler())):
        scaler = Scaler.fit(kind, np.array_split(x, 7), n_features=4)
        np.testing.assert_allclose(scaler.transform(x), reference.fit_transform(x), atol=1e-5)


def test_saved_preprocessing_gives_the_same_inputs_for_the_same_file(table, tmp_path):
    dm = CSVDataModule(path=table, target="label", categorical=["colour"], scaling="standard")
    dm.setup()
    path = tmp_path / "preprocessing.json"
    path.write_text(json.dumps(dm.preprocessing.to_dict()))
    prep = load_preprocessing(path)
    x, y = prep.read_csv(table)
    ours = torch.cat([dm.x_train, dm.x_val, dm.x_test])
    order = torch.cat([dm.x_train, dm.x_val, dm.x_test])[:, 0].argsort()  # column 0 is the id: sort rows by it
    torch.testing.assert_close(torch.from_numpy(x), ours[order])
    assert torch.equal(torch.from_numpy(y), torch.cat([dm.y_train, dm.y_val, dm.y_test])[order])
    unlabelled = write_csv(tmp_path / "new.csv", "colour,count,height,id", ["purple,5,50.0,3"])
    x_new, y_new = prep.read_csv(unlabelled)  # columns found by name; an unseen category is all zeros
    assert y_new is None and x_new.shape == (1, 6) and x_new[0, 3:].tolist() == [0, 0, 0]


def test_text_labels_listed_as_categorical_become_classes(tmp_path):
    path = write_csv(tmp_path / "iris.csv", "a,b,species", [f"{i},{i % 5},{['setosa', 'virginica'][i % 2]}" for i in range(20)])
    dm = CSVDataModule(path=path, target="species", categorical=["species"], test_fraction=0.0, val_fraction=0.0)
    dm.setup()
    assert dm.preprocessing.classes == ["setosa", "virginica"] and dm.n_classes == 2 and dm.n_features == 2
    assert torch.equal(dm.y_train, (dm.x_train[:, 0] * 19).round().long() % 2)  # row i is setosa (0) when i is even
    headerless = write_csv(tmp_path / "h.csv", "1,2,0", [f"{i},{i},{i % 2}" for i in range(9)])
    dm = CSVDataModule(path=headerless, header=False, target=2, test_fraction=0.0, val_fraction=0.0)
    dm.setup()
    assert dm.n_features == 2 and dm.y_train.bincount().tolist() == [6, 4]  # the first line is data too


def test_a_run_saves_the_preprocessing_next_to_the_encoder(table, tmp_path):
    cfg = make_cfg("train", ["data=csv", f"data.path={table}", "data.target=label", "data.drop=[id]",
                             "data.categorical=[colour]", "trainer.max_epochs=1", "logger=none", "model.n_hidden=4"],
                   tmp_path / "run")
    out = tasks.train(cfg)
    saved = tmp_path / "run" / "preprocessing.json"
    assert out["summary"]["preprocessing"] == str(saved)
    prep = load_preprocessing(saved)
    assert prep.scaler.kind == "minmax" and [c["name"] for c in prep.columns] == ["height", "count", "colour"]
    x, _ = prep.read_csv(table)
    assert x.shape == (60, 5) and x.min() >= 0 and x.max() <= 1


BAD = {
    "nan": ("a,b,label", ["1,2,0", "3,nan,1", "5,6,0"], r"line 3, column 'b' holds 'nan'"),
    "infinite": ("a,b,label", ["1,2,0", "3,4,1", "-inf,6,0"], r"line 4, column 'a' holds '-inf'"),
    "empty file": ("", [], r"is empty"),
    "header only": ("a,b,label", [], r"no rows of data"),
    "one row": ("a,b,label", ["1,2,0"], r"a single example \(one row\)"),
    "text in a number column": ("a,b,label", ["1,2,0", "3,abc,1", "5,6,0"], r"line 3, column 'b': 'abc' is not a number; .*data\.categorical=\[b\]"),
    "missing value": ("a,b,label", ["1,2,0", "3,,1", "5,6,0"], r"line 3, column 'b' is empty"),
    "fractional label": ("a,b,label", ["1,2,0", "3,4,2.5", "5,6,0"], r"line 3, column 'label': label '2.5' is not a class number"),
    "text label": ("a,b,label", ["1,2,0", "3,4,cat", "5,6,0"], r"label 'cat' is not a class number.*data\.categorical"),
    "negative label": ("a,b,label", ["1,2,0", "3,4,-1", "5,6,0"], r"label '-1' is not a class number"),
    "ragged line": ("a,b,label", ["1,2,0", "3,4", "5,6,0"], r"line 3 has 2 fields but the header has 3 columns"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_csv_input_stops_with_one_line_naming_file_place_and_fix(tmp_path, case):
    header, rows, pattern = BAD[case]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *rows]) + ("\n" if header else ""))
    dm = CSVDataModule(path=str(path), target="label", test_fraction=0.0, val_fraction=0.0)
    with pytest.raises(ValueError, match=pattern) as err:
        dm.setup()
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_csv_options(table, tmp_path):
    with pytest.raises(ValueError, match=r"data.path is not set"):
        CSVDataModule().setup()  # the config's default: instantiating works, setup says what is missing
    with pytest.raises(FileNotFoundError, match=r"no such file"):
        CSVDataModule(path=str(tmp_path / "absent.csv")).setup()
    with pytest.raises(ValueError, match=r"data.target names \['labels'\], not columns of .*'label'"):
        CSVDataModule(path=table, target="labels").setup()
    with pytest.raises(ValueError, match=r"data.scaling='max'"):
        CSVDataModule(path=table, scaling="max")


@pytest.mark.parametrize("case", ["bernoulli range", "missing mnist"])
def test_bad_input_through_the_command_line_is_one_line(tmp_path, case):
    if case == "bernoulli range":
        path = write_csv(tmp_path / "pixels.csv", "p1,p2", [f"{i},{255 - i}" for i in range(0, 250, 10)])
        args, expected = ["data=csv", f"data.path={path}", "data.scaling=none"], [path, "need [0, 1]", "min-max"]
    else:
        args, expected = ["data=mnist", f"data.root={tmp_path}"], [str(tmp_path / "MNIST" / "raw"), "data.download=true"]
    proc = run_cli(["unsupnn-train", *args, "logger=none", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and all(text in error_lines[0] for text in expected), proc.stderr[-2000:]
