"""Sweeps: one summary table of every run of a ``-m`` sweep, and the value a hyperparameter search optimises.

``SweepSummary`` is a Hydra callback (configs/hydra/default.yaml): when a multirun ends it reads each job's
``.hydra/overrides.yaml`` and ``results.json`` and writes ``summary.csv`` and ``summary.md`` into the sweep
directory. It runs in the process that launched the sweep, so it works the same with the basic, joblib and
submitit launchers (the jobs' folders are all it needs).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SUMMARY = "summary"
SWEEP_DIR_ENV = "UNSUPNN_SWEEP_DIR"  # read by hydra.sweep.dir in configs/hydra/default.yaml


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """One flat dict of a run's final numbers: pretraining metrics (``val/pll``, ...), its time, and each
    classifier row as ``<method>/test_accuracy`` (pretrain runs only)."""
    summary = results.get("pretrain", {})
    metrics = {**summary.get("metrics", {}), "pretrain/seconds": summary.get("seconds", math.nan)}
    for row in results.get("rows", []):
        metrics[f"{row['method']}/test_accuracy"] = row["test_accuracy"]
    return metrics


def optimized_value(cfg: DictConfig, result: dict[str, Any]) -> float | None:
    """The number a sweeper optimises (config key ``optimized_metric``), or None when it is not set."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    # tasks.train returns {"summary": ...}; tasks.pretrain returns what it writes to results.json.
    metrics = flat_metrics({"pretrain": result["summary"]} if "summary" in result else result)
    if name not in metrics:
        raise ValueError(f"optimized_metric={name!r} is not a metric of this run; it has {sorted(metrics)}: pick one of them")
    return float(metrics[name])


def _overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    # `~key` (a deletion) has no value: it shows as an empty cell
    pairs = (str(o).partition("=") for o in OmegaConf.load(path))
    return {key.lstrip("+~"): value for key, _, value in pairs}


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job folder (``0``, ``1``, ...): its overrides, status and final metrics."""
    rows = []
    jobs = sorted((d for d in sweep_dir.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    for job in jobs:
        results_path = job / "results.json"
        results = json.loads(results_path.read_text()) if results_path.is_file() else None
        rows.append({
            "job": job.name,
            "overrides": _overrides(job),
            "status": "ok" if results is not None else "no results.json",
            "metrics": flat_metrics(results) if results is not None else {},
        })
    return rows


def summary_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns: job, the overrides that differ between jobs (all of them for a single job), status, metrics."""
    keys = sorted({k for r in rows for k in r["overrides"]})
    swept = [k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1] if len(rows) > 1 else keys
    metric_names = sorted({m for r in rows for m in r["metrics"]})
    header = ["job", *swept, "status", *metric_names]
    body = [[r["job"], *(r["overrides"].get(k, "") for k in swept), r["status"],
             *(r["metrics"].get(m, "") for m in metric_names)] for r in rows]
    return header, body


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_summary(sweep_dir: Path) -> Path | None:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir``; return the csv path (None without jobs)."""
    rows = collect(sweep_dir)
    if not rows:
        return None
    header, body = summary_table(rows)
    csv_path = sweep_dir / f"{SUMMARY}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(body)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in body]
    (sweep_dir / f"{SUMMARY}.md").write_text("\n".join(lines) + "\n")
    return csv_path


def _started_by_lightning() -> bool:
    """A DDP process that Lightning's launcher started by re-running the command line (not rank 0)."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


class SweepSummary(Callback):
    """Hydra callback: the summary table of a multirun, written when the sweep ends (by one process)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _started_by_lightning():
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir() and (path := write_summary(sweep_dir)) is not None:
            print(f"sweep summary: {path} ({path.with_suffix('.md').name})")


class ShareSweepDir(Callback):
    """Hydra callback: a ``-m`` sweep of DDP runs keeps one sweep directory.

    Lightning's DDP launcher starts the other processes by re-running the command line, ``-m`` included;
    each would name a new sweep directory after its own start time (``${now:...}``). They inherit the
    environment, so the directory this process resolved is handed to them there. Their launchers also
    overwrite ``multirun.yaml`` with their own command line, so this process writes its own back at the end.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[SWEEP_DIR_ENV] = str(Path(config.hydra.sweep.dir).resolve())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not _started_by_lightning() and sweep_dir.is_dir():
            (sweep_dir / "multirun.yaml").write_text(OmegaConf.to_yaml(config))
