"""Greedy layer-wise stacks: a deep encoder trained one layer at a time, without labels.

A deep belief net (``model=dbn``; Hinton, Osindero & Teh 2006) stacks RBMs, a stacked denoising
autoencoder (``model=sda``; Vincent et al. 2010) stacks denoising autoencoders. Layer i is trained on
what layers 1..i-1 make of the data (an RBM's hidden probabilities, an autoencoder's code), each layer
its own training phase with its own epochs, TensorBoard run (``pretrain/layer<i>``) and checkpoints.
The trained layers' encoders, in order, are the stack's encoder: it exports to the same file format and
is fine-tuned whole by the downstream classifier.

A stack config names the widths, the epochs and one layer template::

    hidden: [500, 500, 2000]   # one layer per entry, bottom-up
    epochs: 10                 # per layer; or a list, one entry per layer
    layer: {_target_: unsupnn.lit.rbm.LitRBM, lr: 0.05, ...}
    first_layer: {}            # overrides for layer 1 alone (e.g. gaussian visible units for real data)
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from unsupnn.checkpoint import resume_checkpoint
from unsupnn.data.base import ArrayDataModule
from unsupnn.io import build_encoder


def is_stack(model_cfg: DictConfig) -> bool:
    return "layer" in model_cfg and "hidden" in model_cfg


def layer_configs(model_cfg: DictConfig) -> list[tuple[DictConfig, int]]:
    """(layer config, epochs) for each layer of the stack, bottom-up."""
    hidden = list(model_cfg.hidden)
    if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ValueError(f"model.hidden={hidden}; give the width of each layer, bottom-up, e.g. [500, 500, 2000]")
    epochs = model_cfg.epochs
    epochs = list(epochs) if OmegaConf.is_list(epochs) or isinstance(epochs, list) else [epochs] * len(hidden)
    if len(epochs) != len(hidden) or not all(isinstance(e, int) and e >= 0 for e in epochs):
        raise ValueError(
            f"model.epochs={model_cfg.epochs} for model.hidden={hidden}: give one number of epochs for every layer, "
            f"or a list of {len(hidden)} numbers"
        )
    template = model_cfg.layer
    takes = inspect.signature(get_class(template._target_)).parameters
    layers = []
    for i, width in enumerate(hidden):
        cfg = OmegaConf.merge(template, (model_cfg.get("first_layer") or {}) if i == 0 else {})
        OmegaConf.set_struct(cfg, False)
        # The width goes where the layer's model keeps it: an RBM's n_hidden, an autoencoder's one-layer hidden_dims.
        if "n_hidden" in takes:
            cfg.n_hidden = width
        else:
            cfg.hidden_dims = [width]
        layers.append((cfg, epochs[i]))
    return layers


class FeatureData(ArrayDataModule):
    """The inputs of an upper layer: what the layers below make of each split, kept in memory.

    Unlabelled (the layers train without labels) and without binarisation: upper layers see the hidden
    probabilities or codes themselves, as in Hinton et al. (2006).
    """

    def __init__(self, name: str, x_train: Tensor, x_val: Tensor, x_test: Tensor, batch_size: int):
        super().__init__(batch_size=batch_size)
        self.x_train, self.x_val, self.x_test = x_train, x_val, x_test
        self.y_train = self.y_val = self.y_test = None
        self.x_labelled = self.y_labelled = None
        self.n_features, self.n_classes = x_train.shape[1], None
        self.source = name
        self._ready = True

    @property
    def name(self) -> str:
        return self.source


@torch.no_grad()
def features(layer: nn.Module, x, chunk: int = 8192) -> Tensor:
    """``layer(x)`` in chunks (a memory-mapped split is read a piece at a time), on the layer's device."""
    was_training = layer.training
    layer.eval()
    device = next(layer.parameters()).device
    # At least one call, so an empty split gives an empty tensor of the right width.
    out = torch.cat([layer(x[i : i + chunk].to(device)) for i in range(0, max(len(x), 1), chunk)])
    layer.train(was_training)
    return out


def stack_encoders(layers: list[Any]) -> nn.Sequential:
    """One encoder from the encoders of trained layers, bottom-up (build_encoder's numbering throughout)."""
    modules, spec = [], []
    for layer in layers:
        part = build_encoder(layer.encoder_spec())
        part.load_state_dict(layer.encoder_state_dict())
        modules += list(part)
        spec += part.spec
    encoder = build_encoder(spec)
    encoder.load_state_dict(nn.Sequential(*modules).state_dict())
    return encoder


class Stack:
    """The trained layers of a stack: what ``save_encoder`` and the run summary need."""

    def __init__(self, name: str, layers: list[pl.LightningModule], hparams: dict):
        self.model_name, self.layers, self.hparams = name, layers, hparams

    def encoder(self) -> nn.Sequential:
        return stack_encoders(self.layers)

    def encoder_spec(self) -> list[dict]:
        return self.encoder().spec

    def encoder_state_dict(self) -> dict[str, Tensor]:
        return self.encoder().state_dict()


def train_stack(cfg: DictConfig, dm: ArrayDataModule, make_trainer: Callable[..., pl.Trainer]) -> tuple[Stack, list[pl.Trainer]]:
    """Train the layers of ``cfg.model`` bottom-up on ``dm``; ``make_trainer(phase, max_epochs)`` gives each its Trainer.

    ``cfg.resume`` continues a killed stack: finished layers reload from their last checkpoints (their
    epochs are done, so nothing retrains), the interrupted layer continues, later layers start afresh.
    """
    data, trained, trainers = dm, [], []
    layers = layer_configs(cfg.model)
    for i, (layer_cfg, epochs) in enumerate(layers, start=1):
        phase = f"pretrain/layer{i}"
        # Each layer from its own seed: a resumed stack draws the same numbers as an uninterrupted one.
        pl.seed_everything(cfg.seed + i - 1, workers=True, verbose=False)
        model = instantiate(layer_cfg, n_features=data.n_features, _recursive_=False, _convert_="all")
        model.check_input(data.x_train, what=f"layer {i} of model={cfg.model.get('name', 'stack')} ({data.name}, training split)")
        ckpt_path = resume_checkpoint(cfg.get("resume"), phase, model)
        trainer = make_trainer(phase, epochs)
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        trained.append(model)
        trainers.append(trainer)
        if i < len(layers):
            data = FeatureData(
                f"layer {i} features of {dm.name}",
                *(features(model, x) for x in (data.x_train, data.x_val, data.x_test)),
                batch_size=dm.batch_size,
            )
    hparams = OmegaConf.to_container(cfg.model, resolve=True)
    return Stack(cfg.model.get("name", "stack"), trained, hparams), trainers
