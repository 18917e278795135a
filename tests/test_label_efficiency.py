"""The label-efficiency study and the downstream classifier's training rules (early stopping, budgets, dropout)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import make_cfg, run_cli

from unsupnn import tasks
from unsupnn.data import DigitsDataModule
from unsupnn.lit.classifier import LitClassifier

SPEC = [{"kind": "linear", "in_features": 64, "out_features": 16}, {"kind": "sigmoid"}]


def test_label_efficiency_experiment_writes_csv_png_and_tensorboard(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(["unsupnn-pretrain", "experiment=label_efficiency", "data=digits", "label_budgets=[3,20,null]",
                    "model.n_hidden=32", "trainer.max_epochs=2", "classifier.max_epochs=2", "classifier.min_steps=8",
                    "callbacks=none", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    methods = ["probe", "finetune", "scratch"]
    assert [(r["labels_per_class"], r["method"]) for r in rows] == [(b, m) for b in ("3", "20", "all") for m in methods]
    n_labelled = [int(r["n_labelled"]) for r in rows[::3]]
    assert n_labelled[:2] == [30, 200] and n_labelled[2] > 1000  # exactly the budget of each of the 10 classes, then all
    assert len(json.loads((run_dir / "results.json").read_text())["rows"]) == 9
    for r in rows:
        assert 0.0 <= float(r["test_accuracy"]) <= 1.0 and int(r["steps"]) >= 8
    # Each (budget, method) pair is its own TensorBoard run and checkpoint folder.
    assert (run_dir / "checkpoints" / "finetune" / "labels_3" / "best.ckpt").is_file()
    assert (run_dir / "tensorboard" / "scratch" / "labels_all").is_dir()
    png = Image.open(run_dir / "label_efficiency.png")
    assert png.format == "PNG" and png.size[0] >= 400
    events = EventAccumulator(str(run_dir / "tensorboard" / "label_efficiency"), size_guidance={"images": 0})
    events.Reload()
    assert "label_efficiency/test_accuracy" in events.Tags()["images"]
    assert "labels/class" in proc.stdout


def test_label_budgets_are_nested_and_every_budget_gets_min_steps(tmp_path):
    dm = DigitsDataModule(batch_size=32)
    dm.setup()
    dm.set_label_budget(5)
    small = {tuple(row.tolist()) for row in dm.x_labelled}
    dm.set_label_budget(50)
    assert small <= {tuple(row.tolist()) for row in dm.x_labelled} and len(dm.y_labelled) == 500
    dm.set_label_budget(None)
    assert dm.x_labelled is dm.x_train


def test_early_stopping_evaluates_the_best_checkpoint_and_a_cosine_schedule_ends_near_zero(tmp_path):
    # lr=0: validation accuracy can never improve, so patience=2 stops after the first check plus two.
    cfg = make_cfg("pretrain", ["trainer.max_epochs=1", "model.n_hidden=16", "callbacks=none", "classifier.lr=0.0",
                                "classifier.encoder_lr=0.0", "classifier.patience=2", "classifier.max_epochs=20",
                                "classifier.min_steps=0", "classifier.methods=[finetune]", "embedding_projector=false"], tmp_path)
    results = tasks.pretrain(cfg)
    steps_per_epoch = -(-1293 // 32)
    assert results["rows"][0]["steps"] == 3 * steps_per_epoch  # epochs 0, 1, 2; not 20
    best = torch.load(tmp_path / "checkpoints" / "finetune" / "best.ckpt", weights_only=True)
    assert best["epoch"] == 0  # nothing improved after the first epoch, so the first one is kept

    cfg = make_cfg("pretrain", ["trainer.max_epochs=1", "model.n_hidden=16", "classifier.max_epochs=4",
                                "classifier.lr_schedule=cosine", "classifier.patience=null", "classifier.min_steps=0",
                                "classifier.methods=[scratch]", "embedding_projector=false"], tmp_path / "cosine")
    tasks.pretrain(cfg)
    events = EventAccumulator(str(tmp_path / "cosine" / "tensorboard" / "scratch"))
    events.Reload()
    lr_tags = [t for t in events.Tags()["scalars"] if t.startswith("lr-")]
    lrs = [e.value for e in events.Scalars(lr_tags[0])]
    assert lrs[0] == pytest.approx(0.01) and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.2 * lrs[0]


def test_min_steps_stretches_a_small_label_budget_and_scratch_gets_finetunes_budget(tmp_path):
    cfg = make_cfg("pretrain", ["trainer.max_epochs=1", "model.n_hidden=16", "callbacks=none", "data.labels_per_class=2",
                                "classifier.max_epochs=3", "classifier.min_steps=30", "classifier.patience=null",
                                "classifier.methods=[finetune,scratch]", "embedding_projector=false"], tmp_path)
    rows = tasks.pretrain(cfg)["rows"]
    # 20 labels at batch 32: one step per epoch; 3 epochs stretched x10 to reach 30 updates, for both methods.
    assert [r["steps"] for r in rows] == [30, 30]


def test_a_stretched_run_validates_once_per_stretch_so_patience_counts_the_same_checks(tmp_path):
    # 20 labels at batch 32, 3 epochs, min_steps 30: stretched x10, validating every 10 epochs (= steps). With
    # patience 1 the run stops at the first check without a better val/acc: after 20 or 30 updates, never
    # between checks (validating every epoch would stop it within a few steps).
    cfg = make_cfg("pretrain", ["trainer.max_epochs=1", "model.n_hidden=16", "callbacks=none", "data.labels_per_class=2",
                                "classifier.max_epochs=3", "classifier.min_steps=30", "classifier.patience=1",
                                "classifier.methods=[scratch]", "embedding_projector=false", "logger=csv"], tmp_path)
    rows = tasks.pretrain(cfg)["rows"]
    assert rows[0]["steps"] in (20, 30)
    metrics = next((tmp_path / "csv").rglob("scratch/**/metrics.csv")).read_text().splitlines()
    header = metrics[0].split(",")
    val_epochs = [line.split(",")[header.index("epoch")] for line in metrics[1:] if line.split(",")[header.index("val/acc")]]
    assert val_epochs and all((int(e) + 1) % 10 == 0 for e in val_epochs), val_epochs


def test_dropout_acts_on_a_trained_encoder_only_in_training_mode():
    torch.manual_seed(0)
    x = torch.rand(8, 64)
    clf = LitClassifier(encoder_spec=SPEC, n_classes=3, dropout=0.5, input_dropout=0.2)
    plain = LitClassifier(encoder_spec=SPEC, n_classes=3)
    plain.load_state_dict(clf.state_dict())  # dropout adds no parameters: the same weights load either way
    clf.train()
    assert not torch.equal(clf(x), clf(x))
    clf.eval()
    torch.testing.assert_close(clf(x), plain.eval()(x))
    probe = LitClassifier(encoder_spec=SPEC, n_classes=3, freeze_encoder=True, dropout=0.5)
    probe.train()
    torch.testing.assert_close(probe(x), probe(x))  # a frozen encoder is not regularised
    with pytest.raises(ValueError, match=r"classifier.dropout=1.0"):
        LitClassifier(encoder_spec=SPEC, n_classes=3, dropout=1.0)
    with pytest.raises(ValueError, match="classifier.lr_schedule='step'"):
        LitClassifier(encoder_spec=SPEC, n_classes=3, lr_schedule="step")
