"""Greedy layer-wise stacks (model=dbn, model=sda) and the Gaussian-Bernoulli preset (model=grbm)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from pytorch_lightning import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import make_cfg, run_cli

import unsupnn
from unsupnn import tasks
from unsupnn.stack import layer_configs

FAST = ["classifier.max_epochs=2", "classifier.min_steps=0", "callbacks=none", "embedding_projector=false"]


def scalar_tags(run_dir: Path, phase: str) -> set[str]:
    acc = EventAccumulator(str(run_dir / "tensorboard" / phase))
    acc.Reload()
    return set(acc.Tags()["scalars"])


class RecordInputs(Callback):
    """Keeps what each layer was trained on (the datamodule its Trainer saw)."""

    def __init__(self, seen: list):
        self.seen = seen

    def on_train_start(self, trainer, pl_module):
        self.seen.append(trainer.datamodule.x_train.clone())


def test_dbn_layer_i_trains_on_the_hidden_probabilities_of_the_layers_below(tmp_path, monkeypatch):
    cfg = make_cfg("train", ["model=dbn", "model.hidden=[24,12,6]", "model.epochs=[2,1,1]", *FAST[2:3]], tmp_path)
    seen: list[torch.Tensor] = []
    real_trainer = tasks._trainer

    def recording_trainer(*args, **kwargs):
        trainer = real_trainer(*args, **kwargs)
        trainer.callbacks.append(RecordInputs(seen))
        return trainer

    monkeypatch.setattr(tasks, "_trainer", recording_trainer)
    out = tasks.train(cfg)
    rbms = [layer.rbm for layer in out["model"].layers]
    assert [r.n_hidden for r in rbms] == [24, 12, 6]
    x = out["datamodule"].x_train
    assert torch.equal(seen[0], x)
    # Written out by hand from each layer's weights: layer i's input is sigmoid(W h + c) of the one below.
    h1 = torch.sigmoid(x @ rbms[0].W.T + rbms[0].c)
    h2 = torch.sigmoid(h1 @ rbms[1].W.T + rbms[1].c)
    torch.testing.assert_close(seen[1], h1, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(seen[2], h2, atol=1e-6, rtol=1e-5)
    # The exported encoder is the three layers in sequence.
    encoder = unsupnn.load_encoder(tmp_path / "encoder.safetensors")
    expected = torch.sigmoid(h2 @ rbms[2].W.T + rbms[2].c)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), expected, atol=1e-6, rtol=1e-5)
    assert [m.out_features for m in encoder if isinstance(m, torch.nn.Linear)] == [24, 12, 6]
    # Each layer trained for its own number of epochs, and its metrics are reported under its own prefix.
    summary = json.loads((tmp_path / "results.json").read_text())["pretrain"]
    assert summary["model"] == "dbn"
    assert {"layer1/train/recon", "layer2/train/recon", "layer3/val/pll"} <= set(summary["metrics"])
    for i, epochs in enumerate([2, 1, 1], start=1):
        ckpt = torch.load(tmp_path / "checkpoints" / "pretrain" / f"layer{i}" / "last.ckpt", weights_only=True)
        assert ckpt["epoch"] == epochs - 1


def test_sda_layers_learn_from_the_clean_codes_below_and_finetuning_changes_every_layer(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(["unsupnn-pretrain", "model=sda", "model.hidden=[32,16]", "trainer.max_epochs=2", *FAST,
                    "classifier.methods=[finetune]", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Each layer is its own TensorBoard run, pretrain/layer<i>, with the denoising autoencoder's metrics.
    for i in (1, 2):
        assert {"train/recon", "val/recon", "val/denoise"} <= scalar_tags(run_dir, f"pretrain/layer{i}")
    encoder = unsupnn.load_encoder(run_dir / "encoder.safetensors")
    assert encoder.in_features == 64 and encoder.out_features == 16
    # The layer-2 autoencoder was trained on layer 1's codes: its checkpointed weights take 32 inputs.
    layer2 = torch.load(run_dir / "checkpoints" / "pretrain" / "layer2" / "last.ckpt", weights_only=True)["state_dict"]
    assert {tuple(v.shape) for k, v in layer2.items() if k.endswith("weight")} >= {(16, 32)}
    # The classifier fine-tuned all of the stack: both layers moved away from the exported weights.
    best = torch.load(run_dir / "checkpoints" / "finetune" / "best.ckpt", weights_only=True)["state_dict"]
    for key in ("0.weight", "2.weight"):
        assert not torch.equal(best[f"encoder.{key}"], encoder.state_dict()[key]), key
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["finetune"] and rows[0]["steps"] > 0


def test_a_stack_resumes_finished_layers_without_retraining_them(tmp_path):
    overrides = ["model=dbn", "model.hidden=[16,8]", "model.epochs=[2,2]", "callbacks=none"]
    whole = tasks.train(make_cfg("train", overrides, tmp_path / "whole"))
    first = unsupnn.load_encoder(tmp_path / "whole" / "encoder.safetensors")
    # A run killed after layer 1 finished: layer 2's checkpoints and the encoder never got written.
    shutil.copytree(tmp_path / "whole", tmp_path / "killed")
    shutil.rmtree(tmp_path / "killed" / "checkpoints" / "pretrain" / "layer2")
    (tmp_path / "killed" / "encoder.safetensors").unlink()
    resumed = tasks.train(make_cfg("train", [*overrides, f"resume={tmp_path / 'killed'}"], tmp_path / "killed"))
    metrics = resumed["summary"]["metrics"]
    # Layer 1 trained no step after reloading (no training metric), layer 2 trained again from its seed.
    assert "layer1/train/recon" not in metrics and "layer1/train/recon" in whole["summary"]["metrics"]
    assert metrics["layer2/train/recon"] == pytest.approx(whole["summary"]["metrics"]["layer2/train/recon"])
    again = unsupnn.load_encoder(tmp_path / "killed" / "encoder.safetensors")
    for key, value in first.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_layer_configs_take_widths_epochs_and_first_layer_overrides():
    model = OmegaConf.create({
        "hidden": [8, 4], "epochs": [3, 1],
        "layer": {"_target_": "unsupnn.lit.rbm.LitRBM", "visible": "bernoulli", "lr": 0.05},
        "first_layer": {"visible": "gaussian", "lr": 0.002},
    })
    (l1, e1), (l2, e2) = layer_configs(model)
    assert (l1.n_hidden, l1.visible, l1.lr, e1) == (8, "gaussian", 0.002, 3)
    assert (l2.n_hidden, l2.visible, l2.lr, e2) == (4, "bernoulli", 0.05, 1)
    sda = OmegaConf.create({"hidden": [6], "epochs": 2, "layer": {"_target_": "unsupnn.lit.autoencoder.LitAutoencoder"}})
    assert layer_configs(sda)[0][0].hidden_dims == [6]
    with pytest.raises(ValueError, match="one number of epochs for every layer"):
        layer_configs(OmegaConf.merge(model, {"epochs": [1, 2, 3]}))
    with pytest.raises(ValueError, match=r"model.hidden=\[\]"):
        layer_configs(OmegaConf.merge(model, {"hidden": []}))


def test_stack_errors_are_one_line_through_the_cli(tmp_path):
    proc = run_cli(["unsupnn-train", "model=dbn", "model.hidden=[8,4]", "model.epochs=[1,1,1]", f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "model.epochs=[1, 1, 1] for model.hidden=[8, 4]" in proc.stderr and "Traceback" not in proc.stderr


def test_digits_standard_scaling_is_fitted_on_the_training_split(tmp_path):
    from unsupnn.data import DigitsDataModule

    dm = DigitsDataModule(scaling="standard", batch_size=32)
    dm.setup()
    varying = dm.x_train.std(0) > 0
    torch.testing.assert_close(dm.x_train.mean(0), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(dm.x_train.std(0, unbiased=False)[varying], torch.ones(int(varying.sum())), atol=1e-4, rtol=0)
    assert abs(float(dm.x_test.mean())) > 1e-4  # the test split is scaled with the training split's statistics
    assert dm.preprocessing is not None


def test_grbm_preset_learns_features_of_standardised_digits(tmp_path):
    cfg = make_cfg("pretrain", ["model=grbm", "data.scaling=standard", "model.n_hidden=64", "trainer.max_epochs=10",
                                "classifier.methods=[features_logistic]", *FAST[2:]], tmp_path)
    assert cfg.model.visible == "gaussian" and cfg.model.lr < 0.05
    results = tasks.pretrain(cfg)
    assert results["rows"][0]["test_accuracy"] > 0.85  # 64 GRBM features of standardised digits
    assert (tmp_path / "preprocessing.json").is_file()
    # Gaussian units: the reconstruction of standardised data is real-valued, well beyond [0, 1].
    ckpt = torch.load(tmp_path / "checkpoints" / "pretrain" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["visible"] == "gaussian"


def test_dbn_with_a_gaussian_first_layer_on_standardised_data(tmp_path):
    cfg = make_cfg("train", ["model=dbn", "model.hidden=[32,16]", "model.epochs=2", "model.first_layer={visible: gaussian, lr: 0.002}", "data.scaling=standard", "callbacks=none"], tmp_path)
    out = tasks.train(cfg)
    assert [layer.hparams.visible for layer in out["model"].layers] == ["gaussian", "bernoulli"]
    assert unsupnn.load_encoder(tmp_path / "encoder.safetensors").out_features == 16
