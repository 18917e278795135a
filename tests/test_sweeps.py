"""Sweeps: the summary table of a multirun, the optimised metric, and the launcher / sweeper configs."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import CONFIGS, make_cfg, run_cli

from unsupnn.sweep import optimized_value, write_summary

FAST = ["trainer.max_epochs=1", "logger=none", "callbacks=none"]


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_multirun_over_models_writes_one_summary_table(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["unsupnn-train", "-m", "model=rbm,ae", "model.lr=0.01", *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(sweep / "summary.csv")
    assert [(r["job"], r["model"], r["status"]) for r in rows] == [("0", "rbm", "ok"), ("1", "ae", "ok")]
    assert "model.lr" not in rows[0]  # the same in every run: not a swept value
    for row in rows:
        results = json.loads((sweep / row["job"] / "results.json").read_text())["pretrain"]
        assert float(row["val/recon"]) == pytest.approx(results["metrics"]["val/recon"])
    assert rows[0]["val/pll"] and not rows[1]["val/pll"]  # an RBM metric: blank for the autoencoder
    table = (sweep / "summary.md").read_text().splitlines()
    assert table[0].startswith("| job | model | status |") and len(table) == 4


def test_summary_lists_classifier_rows_and_jobs_without_results(tmp_path):
    for job, lr, acc in (("0", "0.1", 0.9), ("1", "0.2", None), ("2", "0.3", 0.8)):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model.lr={lr}", "seed=0"]))
        if acc is not None:
            results = {"rows": [{"method": "probe", "test_accuracy": acc, "seconds": 1.0}],
                       "pretrain": {"seconds": 2.0, "metrics": {"val/pll": -0.3}}}
            (tmp_path / job / "results.json").write_text(json.dumps(results))
    rows = read_csv(write_summary(tmp_path))
    assert [(r["model.lr"], r["status"], r["probe/test_accuracy"]) for r in rows] == [
        ("0.1", "ok", "0.9"), ("0.2", "no results.json", ""), ("0.3", "ok", "0.8")]
    assert "seed" not in rows[0]


def test_optimized_metric_is_what_the_entry_point_returns(tmp_path):
    result = {"summary": {"seconds": 1.0, "metrics": {"val/pll": -0.25, "val/fe_gap": 0.1}}}
    assert optimized_value(make_cfg("train", [], tmp_path), result) is None
    assert optimized_value(make_cfg("train", ["optimized_metric=val/pll"], tmp_path), result) == -0.25
    pretrain = {"rows": [{"method": "probe", "test_accuracy": 0.91, "seconds": 1.0}], "pretrain": result["summary"]}
    assert optimized_value(make_cfg("pretrain", ["optimized_metric=probe/test_accuracy"], tmp_path), pretrain) == 0.91
    with pytest.raises(ValueError, match="optimized_metric='val/acc'.*val/pll"):
        optimized_value(make_cfg("train", ["optimized_metric=val/acc"], tmp_path), result)


def test_optuna_search_maximises_the_validation_pll_of_its_trials(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the optional extra: pip install 'unsupnn[optuna]'")
    sweep = tmp_path / "sweep"
    proc = run_cli(["unsupnn-train", "hparams_search=rbm_optuna", "hydra.sweeper.n_trials=2", *FAST,
                    f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 2 and {"model.lr", "model.n_hidden"} <= set(rows[0])
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    # The sweeper saw the value each run returned: its best is the largest val/pll in the table.
    assert best["best_value"] == pytest.approx(max(float(r["val/pll"]) for r in rows))
    assert int(best["best_params"]["model.n_hidden"]) in (32, 64, 128, 256)


def compose_with_hydra(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_hands_submitit_one_task_per_device(tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the optional extra: pip install 'unsupnn[slurm]'")
    import submitit

    cfg = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4",
                              "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", f"hydra.sweep.dir={tmp_path}"])
    received = {}

    class FakeExecutor:  # stands in for SLURM: records what submitit is given, submits nothing
        def __init__(self, cluster, **kwargs):
            received["init"] = {"cluster": cluster, **kwargs}

        def update_parameters(self, **kwargs):
            received["params"] = kwargs

        def map_array(self, fn, *args):
            received["jobs"] = list(args[0])
            return []

    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["model.lr=0.01"], ["model.lr=0.05"]], initial_job_idx=0)
    assert received["init"]["cluster"] == "slurm" and received["init"]["folder"].startswith(str(tmp_path))
    params = received["params"]
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (2, 4, 4)
    assert params["slurm_partition"] == "gpu" and params["timeout_min"] == 240
    assert received["jobs"] == [["model.lr=0.01"], ["model.lr=0.05"]]


def test_parallel_launcher_composes_to_joblib(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs the optional extra: pip install 'unsupnn[joblib]'")
    cfg = compose_with_hydra(["hydra/launcher=parallel", "hydra.launcher.n_jobs=3"])
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "JoblibLauncher" and launcher.joblib["n_jobs"] == 3
