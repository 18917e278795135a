"""Training checkpoints that survive a kill and resume exactly.

Writes go to a temporary file in the checkpoint's own folder, then ``os.replace``: a kill leaves the
previous complete file or the new complete one. Lightning's own writer stages the file in the system's
temporary folder and moves it, which is a copy (not atomic) when that folder is on another filesystem.
Reads use ``torch.load(weights_only=True)``, so a checkpoint carrying pickled objects is refused unrun.
The random-number generators' state travels in each checkpoint as plain tensors and values.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from unsupnn.io import _looks_like_torch_file, atomic_write

LAST = "last.ckpt"


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (disk full, folder not writable), with the fix."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written through unsupnn.io.atomic_write (same folder, fsync, rename); loads only
    tensors and plain values."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        # Serialised in memory first: torch.save straight into a file reports a full disk as a RuntimeError.
        buffer = BytesIO()
        torch.save(checkpoint, buffer)
        try:
            atomic_write(path, buffer.getvalue())
        except OSError as err:
            raise CheckpointWriteError(
                f"cannot write checkpoint {path}: {err.strerror or err}; earlier checkpoints are intact. Free space "
                f"or choose a writable output directory (hydra.run.dir=...), then continue with resume=<run dir>"
            ) from None

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint read with weights_only=True, or a ValueError that says why it cannot be used."""
    if not _looks_like_torch_file(path):
        raise ValueError(f"resume={path} is not a readable checkpoint (not a file torch.save wrote); pass a run "
                         "directory or its checkpoints/<phase>/last.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(
            f"resume={path}: the checkpoint holds Python objects besides tensors and plain values, and unpickling "
            "them could run arbitrary code, so it was not loaded; resume only from checkpoints unsupnn wrote"
        ) from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"resume={path} is not a readable checkpoint ({str(err).splitlines()[0]}); it may be truncated: "
            "resume from another checkpoint of the run or start afresh"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) or "loops" not in ckpt:
        raise ValueError(f"resume={path} is not a Lightning training checkpoint; pass a run directory or its checkpoints/<phase>/last.ckpt")
    return ckpt


def resume_checkpoint(resume: str | None, phase: str, model: torch.nn.Module) -> Path | None:
    """The checkpoint to continue ``phase`` from: ``resume`` itself (a .ckpt) or the run directory's
    ``checkpoints/<phase>/last.ckpt``. None for a run directory without one yet (killed before its first
    epoch ended): the run then starts from the beginning in that directory."""
    if not resume:
        return None
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoints" / phase / LAST
        if not path.is_file():
            print(f"resume={resume}: no {phase} checkpoint yet, starting {phase} from the beginning")
            return None
    elif not path.is_file():
        raise FileNotFoundError(f"resume={resume}: no such run directory or checkpoint; pass a run directory or a .ckpt file")
    state = read_checkpoint(path)["state_dict"]
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:3]
        raise ValueError(
            f"resume={resume}: the checkpoint's weights do not fit the configured model (differences: {diff}); "
            "resume with the model and data settings of the run that wrote it"
        )
    return path


class RandomState(pl.Callback):
    """Keeps the random-number generators' state in every checkpoint and puts it back when training
    resumes, so the resumed run draws what the uninterrupted one would have (Lightning saves none)."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
            "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Restored with the weights, before the first batch is drawn (Lightning fetches it ahead, before
        # any training hook); the sanity check in between runs under Lightning's isolate_rng.
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        n = state_dict["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        p = state_dict["python"]
        random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss_next"]))
