"""Every model x data (x experiment) composes through Hydra and instantiates."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from conftest import CONFIGS, make_cfg

from unsupnn.stack import is_stack, layer_configs

MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("app", ["train", "pretrain"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("data", DATA)
def test_every_model_and_data_config_composes(app, model, data, tmp_path):
    cfg = make_cfg(app, [f"model={model}", f"data={data}"], tmp_path)
    assert cfg.data._target_ and cfg.trainer._target_
    assert cfg.paths.output_dir == str(tmp_path)
    dm = instantiate(cfg.data)
    if is_stack(cfg.model):  # dbn, sda: every layer instantiates, each on the width of the one below
        widths = [17, *cfg.model.hidden]
        for (layer, _), n_in in zip(layer_configs(cfg.model), widths):
            assert instantiate(layer, n_features=n_in, _recursive_=False, _convert_="all").hparams.n_features == n_in
    else:
        lit = instantiate(cfg.model, n_features=17, _recursive_=False, _convert_="all")
        assert lit.hparams.n_features == 17
    assert dm.batch_size == cfg.data.batch_size


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment, tmp_path):
    cfg = make_cfg("pretrain", [f"experiment={experiment}"], tmp_path)
    assert cfg.classifier.methods


def test_command_line_overrides_reach_the_objects(tmp_path):
    cfg = make_cfg("train", ["model.n_hidden=33", "model.k=3", "model.persistent=true", "data.batch_size=7",
                             "trainer.max_epochs=2", "model.lr=0.2", "seed=5"], tmp_path)
    lit = instantiate(cfg.model, n_features=64, _recursive_=False, _convert_="all")
    assert (lit.hparams.n_hidden, lit.hparams.k, lit.hparams.persistent, lit.hparams.lr) == (33, 3, True, 0.2)
    assert lit.chains.shape == (7, 64)  # n_chains follows data.batch_size by default
    assert instantiate(cfg.trainer).max_epochs == 2
    assert cfg.seed == 5


def test_model_hparams_are_plain_values_so_checkpoints_load_weights_only(tmp_path):
    import torch

    cfg = make_cfg("train", [], tmp_path)
    lit = instantiate(cfg.model, n_features=8, _recursive_=False, _convert_="all")
    path = tmp_path / "h.pt"
    torch.save({"hparams": dict(lit.hparams), "state_dict": lit.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["hparams"]["optimizer"]["_target_"] == "torch.optim.SGD"
