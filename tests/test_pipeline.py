"""The command-line tools end to end: real subprocesses, real Trainer runs, real TensorBoard files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO, make_cfg, run_cli

import unsupnn
from unsupnn import tasks

TINY = ["trainer.max_epochs=2", "classifier.max_epochs=2", "model.n_hidden=16"]


def scalar_tags(run_dir: Path, phase: str) -> set[str]:
    acc = EventAccumulator(str(run_dir / "tensorboard" / phase))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_pretrain_console_script_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(["unsupnn-pretrain", *TINY, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert [r["method"] for r in results["rows"]] == ["probe", "finetune", "scratch", "raw_logistic"]
    for row in results["rows"]:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["seconds"] >= 0
    assert results["rows"][-1]["test_accuracy"] > 0.8  # logistic regression on raw digits is easy
    assert "raw_logistic" in proc.stdout and "test_accuracy" in proc.stdout

    # The run directory holds everything: config, encoder, checkpoints, event files.
    assert (run_dir / "config.yaml").is_file() and (run_dir / ".hydra" / "config.yaml").is_file()
    encoder = unsupnn.load_encoder(run_dir / "encoder.safetensors")
    assert encoder.in_features == 64 and encoder.out_features == 16
    assert (run_dir / "checkpoints" / "pretrain" / "last.ckpt").is_file()
    for method in ("probe", "finetune", "scratch"):
        assert (run_dir / "checkpoints" / method / "best.ckpt").is_file()

    assert {"train/recon", "train/cd_loss", "val/recon", "val/pll", "val/fe_gap", "val/free_energy"} <= scalar_tags(run_dir, "pretrain")
    for method in ("probe", "finetune", "scratch"):
        assert {"train/loss", "train/acc", "val/acc", "test/acc"} <= scalar_tags(run_dir, method)


def test_train_script_file_exports_an_encoder_matching_the_checkpoint(tmp_path, python):
    run_dir = tmp_path / "run"
    proc = run_cli([python, str(REPO / "scripts" / "train.py"), "trainer.max_epochs=1", "model.n_hidden=8",
                    "model.persistent=true", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "pretrain" / "last.ckpt", weights_only=True)
    encoder = unsupnn.load_encoder(run_dir / "encoder.safetensors")
    assert torch.equal(encoder[0].weight, ckpt["state_dict"]["rbm.W"])
    assert ckpt["state_dict"]["chains"].shape == (32, 64)  # the persistent chains travel with the checkpoint
    assert json.loads((run_dir / "results.json").read_text())["pretrain"]["model"] == "rbm"


def test_multirun_sweep_writes_one_run_per_value(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["unsupnn-train", "-m", "model.n_hidden=4,6", "trainer.max_epochs=1", "logger=none",
                    f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    widths = sorted(unsupnn.load_encoder(p).out_features for p in sweep.glob("*/encoder.safetensors"))
    assert widths == [4, 6]


def test_bad_input_gets_one_line_not_a_traceback(tmp_path):
    proc = run_cli(["unsupnn-train", "model.k=0", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "model.k=0" in proc.stderr


def test_pretrain_in_process_with_features_logistic(tmp_path):
    cfg = make_cfg("pretrain", [*TINY, "classifier.methods=[features_logistic,probe]", "logger=none"], tmp_path)
    results = tasks.pretrain(cfg)
    assert [r["method"] for r in results["rows"]] == ["features_logistic", "probe"]
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["rows"] == results["rows"]


def test_unknown_method_is_refused_before_training(tmp_path):
    cfg = make_cfg("pretrain", ["classifier.methods=[probe,svm]"], tmp_path)
    with pytest.raises(ValueError, match="valid methods"):
        tasks.pretrain(cfg)
    assert not (tmp_path / "encoder.safetensors").exists()


def test_data_outside_the_unit_interval_is_refused_for_bernoulli_units(tmp_path):
    cfg = make_cfg("train", ["data.scaling=max"], tmp_path)
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    dm.setup()
    dm.x_train = dm.x_train * 16  # raw 0..16 pixel values
    with pytest.raises(ValueError, match=r"need \[0, 1\]"):
        tasks.train(cfg, datamodule=dm)


@pytest.mark.skipif(shutil.which("pip") is None, reason="pip is needed to build the wheel")
def test_non_editable_install_finds_its_configs_from_any_directory(tmp_path, python):
    target = tmp_path / "site"
    proc = run_cli([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                    "--target", str(target), str(REPO)], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (target / "unsupnn" / "configs" / "pretrain.yaml").is_file()
    assert (target / "unsupnn" / "configs" / "model" / "rbm.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import sys; from unsupnn.cli import train_main, config_dir; print(config_dir()); "
            "sys.argv = ['unsupnn-train', 'trainer=fdr', 'logger=none', 'hydra.run.dir=run']; train_main()")
    proc = run_cli([python, "-c", code], cwd=elsewhere, env={"PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == str(target / "unsupnn" / "configs")
    assert (elsewhere / "run" / "encoder.safetensors").is_file()


def test_sklearn_rbm_protocol_reaches_the_published_accuracy(tmp_path):
    """scikit-learn's example: BernoulliRBM features 0.9416, raw pixels 0.7819 (scikit-learn 1.9.1)."""
    cfg = make_cfg("pretrain", ["experiment=sklearn_rbm_digits", "classifier.methods=[features_logistic,raw_logistic]",
                                "logger=none", "callbacks=none"], tmp_path)
    rows = {r["method"]: r["test_accuracy"] for r in tasks.pretrain(cfg)["rows"]}
    assert abs(rows["raw_logistic"] - 0.7819) < 0.002  # the same split, scaling and logistic regression
    assert rows["features_logistic"] >= 0.94
