"""Console entry points ``unsupnn-train`` and ``unsupnn-pretrain`` (Hydra applications)."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from unsupnn.io import EncoderFormatError

_PACKAGE = Path(__file__).resolve().parent


def resume_run_dir(resume: str | None, default: str) -> str:
    """``hydra.run.dir`` (configs/hydra/default.yaml): the directory of the run that ``resume`` names
    (the directory itself, or <run> for <run>/checkpoints/<phase>/x.ckpt), else ``default``."""
    path = Path(resume) if resume else None
    if path is not None and path.is_dir():
        return str(path)
    if path is not None and path.is_file() and path.parent.parent.name == "checkpoints":
        return str(path.parent.parent.parent)
    return default


OmegaConf.register_new_resolver("unsupnn.run_dir", resume_run_dir, replace=True)


def config_dir() -> Path:
    """The configs shipped in the wheel (unsupnn/configs), else the source checkout's top-level configs/."""
    for candidate in (_PACKAGE / "configs", _PACKAGE.parent / "configs"):
        if (candidate / "pretrain.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"unsupnn's configs/ folder was not found next to {_PACKAGE}; reinstall unsupnn")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def _run(task: str, cfg: DictConfig) -> float | None:
    """Run the task; return the value of ``optimized_metric`` (for a sweeper such as Optuna), if set."""
    from unsupnn import tasks
    from unsupnn.sweep import optimized_value
    from unsupnn.checkpoint import CheckpointWriteError
    from unsupnn.divergence import DivergenceError

    # Keep the console for our progress and results: no advertising, no upstream deprecation noise.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=".*treespec.*")

    try:
        return optimized_value(cfg, getattr(tasks, task)(cfg))
    except (ValueError, KeyError, FileNotFoundError, EncoderFormatError, DivergenceError, CheckpointWriteError) as err:
        # Problems with the user's input: one line naming the problem and the fix, no traceback.
        sys.exit(f"unsupnn-{task}: error: {err}")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _train_app(cfg: DictConfig) -> float | None:
    return _run("train", cfg)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="pretrain")
def _pretrain_app(cfg: DictConfig) -> float | None:
    return _run("pretrain", cfg)


def _config_error(err: Exception) -> str:
    """One line for a command line Hydra cannot compose or a config group it cannot build."""
    from hydra.errors import InstantiationException, MissingConfigException

    if isinstance(err, MissingConfigException) and err.options:
        group, _, name = str(err.missing_cfg_file).rpartition("/")
        return f"{group}={name} is not a known {group}; choose one of: {', '.join(err.options)}"
    if isinstance(err, InstantiationException) and err.__cause__ is not None:
        key = str(err).rsplit("full_key: ", 1)[-1].strip()
        mine = [a for a in sys.argv[1:] if a.lstrip("+~").startswith(f"{key}.")]
        return (f"{key} could not be built from the config ({type(err.__cause__).__name__}: {err.__cause__}); "
                f"check the values you set {mine}: each must have the type of the default (--cfg job prints them)")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if err.__cause__ is not None:
        lines.insert(1, str(err.__cause__).splitlines()[0])
    return "; ".join(line.rstrip(".") for line in lines) + " (--cfg job prints every key and its default)"


def _main(app, task: str) -> None:
    """Run a Hydra app; a config error becomes one line on stderr instead of Hydra's report.

    Hydra prints its own multi-line report unless HYDRA_FULL_ERROR=1, which makes it raise; we set it to
    catch the error ourselves, and let it through untouched if the user set it (they asked for the trace).
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    wants_trace = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    except (HydraException, OmegaConfBaseException) as err:
        if wants_trace:
            raise
        sys.exit(f"unsupnn-{task}: error: {_config_error(err)}")
    except OSError as err:  # the output directory cannot be made or written (Hydra makes it before the task)
        if wants_trace:
            raise
        sys.exit(f"unsupnn-{task}: error: cannot write {err.filename}: {err.strerror}; choose a writable output "
                 "directory with free space (hydra.run.dir=...)")


def train_main() -> None:
    _main(_train_app, "train")


def pretrain_main() -> None:
    _main(_pretrain_app, "pretrain")
