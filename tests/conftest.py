from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from unsupnn.cli import config_dir

REPO = Path(__file__).resolve().parents[1]
CONFIGS = config_dir()


def make_cfg(config_name: str, overrides: list[str], output_dir: Path):
    """A config composed by Hydra exactly as the command line would, writing into output_dir."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def run_cli(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a console script (or `python scripts/...`) as a real subprocess."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture
def python() -> str:
    return sys.executable
