"""The work behind the command-line tools: plain functions, DictConfig in, metrics out.

``train(cfg)`` trains an unsupervised model and exports its encoder; ``pretrain(cfg)`` runs the whole
pipeline (train, export, probe / fine-tune / scratch classifiers, logistic baselines) and writes
``results.json``. Tests call them in-process with a composed config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from sklearn.linear_model import LogisticRegression

from unsupnn.callbacks import log_embedding
from unsupnn.checkpoint import AtomicCheckpointIO, RandomState, resume_checkpoint
from unsupnn.distributed import process_group
from unsupnn.divergence import StopOnDivergence
from unsupnn.io import atomic_write, is_checkpoint, load_encoder, read_encoder_header, save_encoder
from unsupnn.lit.classifier import LitClassifier
from unsupnn.stack import features, is_stack, train_stack
from unsupnn.study import budget_name, save_plot, write_csv

ENCODER_FILE = "encoder.safetensors"
PREPROCESSING_FILE = "preprocessing.json"
METHODS = ("probe", "finetune", "scratch", "raw_logistic", "features_logistic")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a kill leaves the previous file or the new one, never half of one."""
    atomic_write(path, json.dumps(data, indent=2).encode())


def _trainer(cfg: DictConfig, run_dir: Path, phase: str, *, max_epochs: int | None = None, monitor: str | None = None,
             patience: int | None = None, **overrides):
    """A Trainer for one phase: its own TensorBoard version and checkpoint folder under the run dir."""
    logger = instantiate(cfg.logger, version=phase) if cfg.get("logger") else False
    # Monitoring callbacks each skip what does not apply (images without image data, AIS without an RBM).
    monitors = [instantiate(cb) for cb in (cfg.get("callbacks") or {}).values() if cb is not None]  # null: switched off
    if not logger:  # LearningRateMonitor refuses a trainer without a logger: there is nowhere to write to
        monitors = [m for m in monitors if not isinstance(m, LearningRateMonitor)]
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints" / phase,
        filename="best" if monitor else "epoch{epoch}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode="max",
        save_last=monitor is None,
    )
    if max_epochs is not None:
        overrides["max_epochs"] = max_epochs
    lr_key = "model.lr" if phase == "pretrain" else "model.layer.lr" if phase.startswith("pretrain/") else "classifier.lr"
    if phase.startswith("pretrain"):
        _check_own_updates(cfg.trainer)
    divergence = StopOnDivergence(lr_key=lr_key)
    callbacks = [*monitors, divergence, RandomState(), checkpoint]
    if monitor and patience:  # patience counts validation checks without a new best
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=patience))
    return instantiate(cfg.trainer, logger=logger, callbacks=callbacks, plugins=[AtomicCheckpointIO()], **overrides)


def _check_own_updates(trainer_cfg: DictConfig) -> None:
    """RBMs and autoencoders make their own updates (lit.common.SeveralUpdatesPerStep), which the Trainer's
    gradient clipping and accumulation cannot reach; Lightning would refuse them with a traceback."""
    clip, accumulate = trainer_cfg.get("gradient_clip_val"), trainer_cfg.get("accumulate_grad_batches") or 1
    if clip:
        raise ValueError(
            f"trainer.gradient_clip_val={clip}: RBMs and autoencoders make their own updates (model.batches_per_step "
            "of them per training step), which the Trainer's gradient clipping does not reach; drop "
            "trainer.gradient_clip_val, or lower model.lr if the updates are too large"
        )
    if accumulate != 1:
        raise ValueError(
            f"trainer.accumulate_grad_batches={accumulate}: RBMs and autoencoders make one update per mini-batch "
            "themselves, which the Trainer does not accumulate; raise data.batch_size instead"
        )


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items())}


MATMUL_PRECISIONS = ("highest", "high", "medium")


def _set_matmul_precision(cfg: DictConfig) -> None:
    """``matmul_precision``: ``high`` lets a GPU with TF32 units (Ampere and later) run float32 matrix products
    in TF32, several times faster, for every model. An RBM's Gibbs chain has its own, narrower option
    (``model.gibbs_dtype=bfloat16``) that keeps the CD statistics in float32."""
    precision = cfg.get("matmul_precision") or "highest"
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision={precision!r}; use one of {list(MATMUL_PRECISIONS)} (high: TF32 on a GPU)")
    torch.set_float32_matmul_precision(precision)


def _setup_data(cfg: DictConfig):
    dm = instantiate(cfg.data)
    dm.setup()
    return dm


def train(cfg: DictConfig, datamodule=None) -> dict[str, Any]:
    """Train cfg.model on cfg.data without labels and export the encoder into the run directory."""
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    _set_matmul_precision(cfg)
    dm = datamodule or _setup_data(cfg)
    stack = is_stack(cfg.model)
    if not stack:  # data the model cannot take at all is the first thing to say (a stack checks each layer's)
        model = instantiate(cfg.model, n_features=dm.n_features, _recursive_=False, _convert_="all")
        model.check_input(dm.x_train, what=f"data={dm.name} (training split)")
    if len(dm.x_train) < dm.batch_size:
        raise ValueError(
            f"data={dm.name}: the training split has {len(dm.x_train)} examples, fewer than one batch "
            f"(data.batch_size={dm.batch_size}); lower data.batch_size or give more examples"
        )
    start = time.perf_counter()
    if stack:  # dbn, sda: one phase per layer, bottom-up
        model, trainers = train_stack(cfg, dm, lambda phase, epochs: _trainer(cfg, run_dir, phase, max_epochs=epochs))
        trainer = trainers[-1]
        metrics = {f"layer{i}/{k}": v for i, t in enumerate(trainers, 1) for k, v in t.callback_metrics.items()}
    else:
        ckpt_path = resume_checkpoint(cfg.get("resume"), "pretrain", model)
        trainer = _trainer(cfg, run_dir, "pretrain")
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        metrics = trainer.callback_metrics
    seconds = time.perf_counter() - start

    encoder_path = run_dir / ENCODER_FILE
    # Under DDP every process runs on from here (Lightning re-ran the script); rank 0 alone writes files.
    if trainer.is_global_zero:
        save_encoder(
            model,
            encoder_path,
            metadata={"model": model.model_name, "data": dm.name, "n_features": dm.n_features, "hparams": dict(model.hparams)},
        )
    summary = {
        "model": model.model_name,
        "data": dm.name,
        "encoder": str(encoder_path),
        "seconds": round(seconds, 3),
        "metrics": _scalars(metrics),
    }
    if dm.preprocessing is not None:
        summary["preprocessing"] = str(run_dir / PREPROCESSING_FILE)
    if trainer.is_global_zero:
        if dm.preprocessing is not None:
            # The transform fitted on the training split, so later data can be fed exactly as in training.
            write_json(run_dir / PREPROCESSING_FILE, dm.preprocessing.to_dict())
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        write_json(run_dir / "results.json", {"pretrain": summary})
    trainer.strategy.barrier("train outputs written")  # the other ranks read the encoder next (pretrain)
    return {"summary": summary, "datamodule": dm, "model": model}


def _fit_classifier(cfg: DictConfig, run_dir: Path, dm, method: str, encoder, phase: str | None = None) -> tuple[float, float, int]:
    """Train encoder + head (probe, finetune or scratch); return (test accuracy, seconds, updates made)."""
    ccfg = cfg.classifier
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    clf = LitClassifier(
        encoder_spec=encoder.spec,
        n_classes=dm.n_classes,
        freeze_encoder=method == "probe",
        head=ccfg.head,
        head_hidden=ccfg.head_hidden,
        lr=ccfg.lr,
        # A fresh encoder learns at the head's rate; a pretrained one is fine-tuned more gently.
        encoder_lr=ccfg.lr if method == "scratch" else ccfg.encoder_lr,
        weight_decay=ccfg.weight_decay,
        optimizer=OmegaConf.to_container(ccfg.optimizer, resolve=True),
        dropout=ccfg.get("dropout", 0.0) if method != "probe" else 0.0,
        input_dropout=ccfg.get("input_dropout", 0.0) if method != "probe" else 0.0,
        lr_schedule=ccfg.get("lr_schedule", "constant"),
        on_features=method == "probe",
    )
    if method != "scratch":
        clf.encoder.load_state_dict(encoder.state_dict())
    has_val = len(dm.x_val) > 0
    # Few labels make short epochs: stretch the run to at least min_steps updates, validating (and counting
    # patience) once per `stretch` epochs, so every label budget gets the same schedule in validation checks.
    steps_per_epoch = -(-len(dm.y_labelled) // ccfg.batch_size)
    stretch = max(1, -(-ccfg.get("min_steps", 0) // (steps_per_epoch * ccfg.max_epochs)))
    trainer = _trainer(cfg, run_dir, phase or method, max_epochs=ccfg.max_epochs * stretch, monitor="val/acc" if has_val else None,
                       patience=ccfg.get("patience"), check_val_every_n_epoch=stretch)
    start = time.perf_counter()
    loaders = _labelled_loaders(dm, ccfg.batch_size, encoder if method == "probe" else None)
    trainer.fit(clf, train_dataloaders=loaders["train"], val_dataloaders=loaders["val"])
    seconds = time.perf_counter() - start
    # The best checkpoint by validation accuracy is the one evaluated (the last one without validation).
    result = trainer.test(clf, dataloaders=loaders["test"], ckpt_path="best" if has_val else None, verbose=False)
    return result[0]["test/acc"], seconds, trainer.global_step


def _labelled_loaders(dm, batch_size: int, frozen_encoder=None) -> dict:
    """The classifier trains on the label budget's picks (all of the training split without a budget);
    validation and test use every labelled example. With a frozen encoder (the probe) the batches hold its
    features, computed once: the encoder's forward pass is not repeated every epoch."""
    if dm.y_train is None:
        raise ValueError(f"data={dm.name} has no labels, so no classifier can be trained: use unsupnn-train instead")
    inputs = {"train": dm.x_labelled, "val": dm.x_val, "test": dm.x_test}
    if frozen_encoder is not None:
        inputs = {split: features(frozen_encoder, x) for split, x in inputs.items()}
    return {
        "train": dm.loader(inputs["train"], dm.y_labelled, shuffle=True, batch_size=batch_size),
        "val": dm.loader(inputs["val"], dm.y_val, shuffle=False, batch_size=batch_size) if len(dm.x_val) else [],
        "test": dm.loader(inputs["test"], dm.y_test, shuffle=False, batch_size=batch_size),
    }


def _in_memory(x) -> torch.Tensor:
    """Every row on the CPU: ``[:]`` reads a memory-mapped split, ``.cpu()`` fetches one kept on the GPU."""
    return x[:].cpu()


def _logistic(cfg: DictConfig, x_train, y_train, x_test, y_test, C: float) -> tuple[float, float]:
    start = time.perf_counter()
    clf = LogisticRegression(C=C, solver=cfg.classifier.logistic_solver, tol=cfg.classifier.logistic_tol, max_iter=1000)
    clf.fit(_in_memory(x_train).numpy(), _in_memory(y_train).numpy())
    return float(clf.score(_in_memory(x_test).numpy(), _in_memory(y_test).numpy())), time.perf_counter() - start


def pretrain(cfg: DictConfig) -> dict[str, Any]:
    """The pipeline: unsupervised training, encoder export, classifiers against baselines."""
    unknown = [m for m in cfg.classifier.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"classifier.methods has {unknown}; valid methods are {list(METHODS)}")
    _set_matmul_precision(cfg)
    dm = _setup_data(cfg)
    _labelled_loaders(dm, 1)  # refuse unlabelled data before spending time on training
    run_dir = Path(cfg.paths.output_dir)
    given = cfg.classifier.get("encoder")
    if given:  # an encoder exported earlier (or a run's checkpoint): evaluate it, train nothing new
        encoder = load_encoder(given)
        if encoder.in_features != dm.n_features:
            raise ValueError(
                f"classifier.encoder={given} takes {encoder.in_features} inputs but data={dm.name} has "
                f"{dm.n_features} features: pass an encoder trained on this data, or drop classifier.encoder to pretrain one"
            )
        made_by = "encoder" if is_checkpoint(given) else read_encoder_header(given)["metadata"].get("model", "encoder")
        out = {"summary": {"model": f"{made_by} (loaded)", "encoder": str(given), "seconds": 0.0, "metrics": {}}}
    else:
        out = train(cfg, datamodule=dm)
        # Round trip through the file: the classifier uses exactly what a user would load.
        encoder = load_encoder(out["summary"]["encoder"])
    writer = process_group()[0] == 0  # under DDP every process runs the pipeline; rank 0 writes and prints
    if writer and cfg.get("embedding_projector") and cfg.get("logger"):
        with torch.no_grad():
            features = encoder(dm.x_test[:2000].cpu())
        log_embedding(run_dir / "tensorboard" / "embedding", features, None if dm.y_test is None else dm.y_test.cpu(),
                      images=dm.x_test[: len(features)].cpu(), image_shape=dm.image_shape)

    # The label-efficiency study walks through label budgets; a plain run has one, data.labels_per_class.
    budgets = list(cfg.label_budgets) if cfg.get("label_budgets") else [dm.labels_per_class]
    study = cfg.get("label_budgets") is not None
    rows = []
    for budget in budgets:
        dm.set_label_budget(budget)
        for method in cfg.classifier.methods:
            phase = f"{method}/labels_{budget_name(budget)}" if study else method
            steps = None
            if method in ("probe", "finetune", "scratch"):
                acc, seconds, steps = _fit_classifier(cfg, run_dir, dm, method, encoder, phase=phase)
            elif method == "raw_logistic":
                acc, seconds = _logistic(cfg, dm.x_labelled, dm.y_labelled, dm.x_test, dm.y_test, cfg.classifier.logistic_C_raw)
            else:
                with torch.no_grad():
                    f_train, f_test = encoder(_in_memory(dm.x_labelled)), encoder(_in_memory(dm.x_test))
                acc, seconds = _logistic(cfg, f_train, dm.y_labelled, f_test, dm.y_test, cfg.classifier.logistic_C)
            row = {"method": method, "test_accuracy": round(float(acc), 4), "seconds": round(seconds, 2)}
            if steps is not None:  # early stopping makes it at most the budget; scratch's budget is finetune's
                row["steps"] = steps
            if study:
                row = {"labels_per_class": budget_name(budget), "n_labelled": len(dm.y_labelled), **row}
            rows.append(row)

    results = {
        "rows": rows,
        "pretrain": out["summary"],
        "n_train": len(dm.x_train),
        "n_test": len(dm.x_test),
        # The label budget: the classifiers and logistic baselines saw n_labelled of the n_train labels.
        "labels": {"labels_per_class": dm.labels_per_class, "n_labelled": len(dm.y_labelled)},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if writer:
        write_json(run_dir / "results.json", results)
        if study:
            write_csv(rows, run_dir / "results.csv")
            save_plot(rows, dm.n_classes, run_dir / "label_efficiency.png", title=f"{out['summary']['model']} on {dm.name}",
                      tensorboard_dir=run_dir / "tensorboard" / "label_efficiency" if cfg.get("logger") else None)
        print_table(rows, title=f"{out['summary']['model']} on {dm.name}: pretraining {out['summary']['seconds']:.1f}s")
        print(f"results: {run_dir / 'results.json'}\nencoder: {out['summary']['encoder']}")
    return results


def print_table(rows: list[dict], title: str = "") -> None:
    if title:
        print(f"\n{title}")
    study = "labels_per_class" in (rows[0] if rows else {})
    print(f"{'labels/class':>12} " * study + f"{'method':<18} {'test_accuracy':>13} {'seconds':>8}")
    for r in rows:
        print((f"{r['labels_per_class']:>12} " if study else "") + f"{r['method']:<18} {r['test_accuracy']:>13.4f} {r['seconds']:>8.2f}")
