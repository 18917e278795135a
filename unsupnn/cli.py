"""Console entry points ``unsupnn-train`` and ``unsupnn-pretrain`` (Hydra applications)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

from unsupnn.io import EncoderFormatError

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The configs shipped in the wheel (unsupnn/configs), else the source checkout's top-level configs/."""
    for candidate in (_PACKAGE / "configs", _PACKAGE.parent / "configs"):
        if (candidate / "pretrain.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"unsupnn's configs/ folder was not found next to {_PACKAGE}; reinstall unsupnn")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def _run(task: str, cfg: DictConfig) -> None:
    from unsupnn import tasks

    # Keep the console for our progress and results: no advertising, no upstream deprecation noise.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=".*treespec.*")

    try:
        getattr(tasks, task)(cfg)
    except (ValueError, KeyError, FileNotFoundError, EncoderFormatError) as err:
        # Problems with the user's input: one line naming the problem and the fix, no traceback.
        sys.exit(f"unsupnn-{task}: error: {err}")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def train_main(cfg: DictConfig) -> None:
    _run("train", cfg)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="pretrain")
def pretrain_main(cfg: DictConfig) -> None:
    _run("pretrain", cfg)
