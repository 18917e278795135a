"""Resume after a kill, atomic checkpoints, and same-seed determinism (docs/reliability.md)."""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import json
import time
from pathlib import Path

import pytest
import torch

from conftest import make_cfg, run_cli
from unsupnn.checkpoint import AtomicCheckpointIO, CheckpointWriteError
from unsupnn.tasks import train

# PCD chains and stochastic binarisation: the run depends on the buffers, the data order and the RNG.
QUICK = ["logger=none", "callbacks=none", "model.n_hidden=16", "model.persistent=true", "data.binarize=stochastic"]


def _last(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "pretrain" / "last.ckpt", weights_only=True)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("model", ["rbm", "dae"])
def test_resumed_run_matches_uninterrupted_run_exactly(tmp_path, model):
    args = [*QUICK, f"model={model}"] if model == "rbm" else ["logger=none", "callbacks=none", "model=dae", "model.hidden_dims=[16]"]
    train(make_cfg("train", [*args, "trainer.max_epochs=4"], tmp_path / "whole"))
    train(make_cfg("train", [*args, "trainer.max_epochs=2"], tmp_path / "split"))
    train(make_cfg("train", [*args, "trainer.max_epochs=4", f"resume={tmp_path / 'split'}"], tmp_path / "split"))
    whole, split = _last(tmp_path / "whole"), _last(tmp_path / "split")
    assert (whole["epoch"], whole["global_step"]) == (split["epoch"], split["global_step"])
    _assert_same_weights(whole["state_dict"], split["state_dict"])
    assert "optimizer_states" in split and split["callbacks"]


def test_a_checkpoint_from_automatic_optimization_resumes_counting_on(tmp_path):
    # Checkpoints written before LitRBM made its own updates (Lightning's manual optimization) keep the step
    # count under automatic optimization's progress: rewritten that way, the checkpoint must resume exactly.
    args = [*QUICK, "model=rbm"]
    train(make_cfg("train", [*args, "trainer.max_epochs=4"], tmp_path / "whole"))
    train(make_cfg("train", [*args, "trainer.max_epochs=2"], tmp_path / "old"))
    path = tmp_path / "old" / "checkpoints" / "pretrain" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    loops = ckpt["loops"]["fit_loop"]
    manual = loops["epoch_loop.manual_optimization.optim_step_progress"]
    assert manual["total"]["completed"] == ckpt["global_step"] > 0
    loops["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]["step"] = copy.deepcopy(manual)
    loops["epoch_loop.manual_optimization.optim_step_progress"] = {
        part: {key: 0 for key in counts} for part, counts in manual.items()}
    torch.save(ckpt, path)
    train(make_cfg("train", [*args, "trainer.max_epochs=4", f"resume={tmp_path / 'old'}"], tmp_path / "old"))
    whole, resumed = _last(tmp_path / "whole"), _last(tmp_path / "old")
    assert whole["global_step"] == resumed["global_step"]
    _assert_same_weights(whole["state_dict"], resumed["state_dict"])


def test_same_seed_same_weights(tmp_path):
    args = [*QUICK, "trainer.max_epochs=2", "trainer.deterministic=true"]
    train(make_cfg("train", args, tmp_path / "a"))
    train(make_cfg("train", args, tmp_path / "b"))
    train(make_cfg("train", [*args, "seed=1"], tmp_path / "c"))
    a, b, c = (_last(tmp_path / r)["state_dict"] for r in "abc")
    _assert_same_weights(a, b)
    assert not torch.equal(a["rbm.W"], c["rbm.W"])  # the check can fail: another seed gives other weights


def _checkpoints_load(run: Path) -> int:
    paths = sorted((run / "checkpoints").rglob("*.ckpt"))
    for path in paths:
        torch.load(path, weights_only=True)  # a truncated file raises here
    return len(paths)


def test_sigkill_at_random_moments_then_resume(tmp_path, python):
    """Kill the CLI with SIGKILL at seeded random moments, resume each time, then compare with a run
    that was never interrupted: the weights must be identical, not merely close."""
    epochs, batch = 6, 8  # 160 steps an epoch: time for a kill to land anywhere in one
    args = [python, str(Path(__file__).resolve().parents[1] / "scripts" / "train.py"), *QUICK,
            f"trainer.max_epochs={epochs}", f"data.batch_size={batch}", "logger=tensorboard"]
    reference = subprocess.Popen([*args, f"hydra.run.dir={tmp_path / 'reference'}"], cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "killed"
    run.mkdir()  # resume=<empty run dir> starts from the beginning in it, so every launch is the same command
    last, rng, kills = run / "checkpoints" / "pretrain" / "last.ckpt", random.Random(9), 0
    while kills < 3:
        before = last.stat().st_mtime_ns if last.exists() else None
        proc = subprocess.Popen([*args, f"resume={run}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # Each launch first saves one checkpoint of its own (so the run progresses), then dies at a
        # random moment of the next epoch or so: mid-step, mid-validation or mid-write.
        while proc.poll() is None and (last.stat().st_mtime_ns if last.exists() else None) == before:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            break  # finished before the kill: nothing left to interrupt
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert _checkpoints_load(run) >= 1
    final = run_cli([*args, f"resume={run}"], cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-2000:]
    assert kills >= 2, kills

    _checkpoints_load(run)
    done, ref = _last(run), _last(tmp_path / "reference")
    assert done["epoch"] == epochs - 1 and done["global_step"] == ref["global_step"]
    _assert_same_weights(ref["state_dict"], done["state_dict"])
    assert (run / "encoder.safetensors").is_file() and (run / "results.json").is_file()
    # One TensorBoard run, continued: every launch wrote its events into the same version folder.
    assert [p.name for p in (run / "tensorboard").iterdir()] == ["pretrain"]


def test_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    """A disk that fills up mid-write, simulated (test_cli_errors.py uses a real small tmpfs where it can)."""
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, target)

    def full_disk(fd):  # some filesystems report a full disk only when the data are flushed
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CheckpointWriteError, match="No space left on device"):
        io.save_checkpoint({"step": torch.tensor(2)}, target)
    monkeypatch.undo()
    assert int(torch.load(target, weights_only=True)["step"]) == 1
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_pipeline_resumes_after_a_kill_during_pretraining(tmp_path):
    """unsupnn-pretrain killed mid-pretraining, then `resume=<run dir>`: pretraining continues to its full
    length in the same run and the classifier phases follow."""
    import unsupnn

    epochs = 4
    args = ["unsupnn-pretrain", *QUICK, f"trainer.max_epochs={epochs}", "data.batch_size=8",
            "classifier.max_epochs=1", "classifier.methods=[probe,raw_logistic]"]
    run = tmp_path / "run"
    last = run / "checkpoints" / "pretrain" / "last.ckpt"
    proc = subprocess.Popen([*args, f"hydra.run.dir={run}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while proc.poll() is None and not last.exists():
        time.sleep(0.02)
    assert proc.poll() is None, "the pipeline finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "results.json").exists() and torch.load(last, weights_only=True)["epoch"] < epochs - 1

    final = run_cli([*args, f"resume={run}"], cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]
    done = _last(run)
    assert done["epoch"] == epochs - 1
    results = json.loads((run / "results.json").read_text())
    assert [r["method"] for r in results["rows"]] == ["probe", "raw_logistic"]
    encoder = unsupnn.load_encoder(run / "encoder.safetensors")
    assert torch.equal(encoder[0].weight, done["state_dict"]["rbm.W"])
