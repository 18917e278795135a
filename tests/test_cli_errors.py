"""Bad input through the real command line: a short message naming the problem and the fix, a non-zero
exit, no traceback, and nothing written under a final output name (docs/reliability.md)."""

from __future__ import annotations

import pickle
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from test_encoders import _Payload

FAST = ["logger=none", "callbacks=none", "trainer.max_epochs=2"]
FINAL_OUTPUTS = ("encoder.safetensors", "results.json", "config.yaml")


def _fails_cleanly(proc: subprocess.CompletedProcess, run: Path | None, *needles: str) -> str:
    err = proc.stderr
    assert proc.returncode != 0, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, err  # Hydra may add its own "Error executing job ..." line
    for needle in needles:
        assert needle in lines[-1], err
    if run is not None:
        assert not [name for name in FINAL_OUTPUTS if (run / name).exists()]
    return lines[-1]


def _npy(tmp_path: Path, name: str, x: np.ndarray) -> str:
    path = tmp_path / name
    np.save(path, x.astype(np.float32))
    return str(path)


def _cases(tmp_path: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    rng = np.random.default_rng(0)
    nan = rng.random((50, 4))
    nan[7, 2] = np.nan
    return {
        "unknown key": (["unsupnn-train", "model.n_hiden=8"], ("model.n_hiden", "+model.n_hiden", "--cfg job")),
        "wrong type": (["unsupnn-train", "model.n_hidden=abc"], ("model.n_hidden=abc", "type of the default")),
        "unknown model": (["unsupnn-train", "model=rmb"], ("model=rmb is not a known model", "rbm", "dae")),
        "unknown data": (["unsupnn-pretrain", "data=digit"], ("data=digit is not a known data", "digits", "npy")),
        "malformed override": (["unsupnn-train", "model.n_hidden=[8"], ("[8", "override_grammar")),
        "nan in data": (["unsupnn-train", "data=npy", f"data.path={_npy(tmp_path, 'nan.npy', nan)}"],
                        ("row", "not a finite number", "clean or impute")),
        "outside [0, 1] for bernoulli": (["unsupnn-train", "data=npy", f"data.path={_npy(tmp_path, 'big.npy', 16 * rng.random((200, 4)))}"],
                                         ("Bernoulli visible units need [0, 1]", "model.visible=gaussian")),
        "empty data": (["unsupnn-train", "data=npy", f"data.path={_npy(tmp_path, 'empty.npy', np.zeros((0, 4)))}"],
                       ("no examples",)),
        "fewer examples than one batch": (["unsupnn-train", "data=npy", f"data.path={_npy(tmp_path, 'few.npy', rng.random((20, 4)))}"],
                                          ("fewer than one batch", "data.batch_size=32", "lower data.batch_size")),
        "labels missing for the classifier": (["unsupnn-pretrain", "data=npy", f"data.path={_npy(tmp_path, 'ok.npy', rng.random((200, 4)))}"],
                                              ("has no labels", "unsupnn-train")),
        "gradient clipping of an RBM": (["unsupnn-train", "+trainer.gradient_clip_val=1.0"],
                                        ("trainer.gradient_clip_val=1.0", "make their own updates", "lower model.lr")),
        "gradient accumulation of a stack": (["unsupnn-train", "model=sda", "model.hidden=[8]", "+trainer.accumulate_grad_batches=4"],
                                             ("trainer.accumulate_grad_batches=4", "raise data.batch_size")),
    }


CASES = ["unknown key", "wrong type", "unknown model", "unknown data", "malformed override", "nan in data",
         "outside [0, 1] for bernoulli", "empty data", "fewer examples than one batch", "labels missing for the classifier",
         "gradient clipping of an RBM", "gradient accumulation of a stack"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_and_no_output(tmp_path, case):
    args, needles = _cases(tmp_path)[case]
    run = tmp_path / "run"
    proc = run_cli([*args, *FAST, f"hydra.run.dir={run}"], cwd=tmp_path)
    _fails_cleanly(proc, run, *needles)


def _resume_files(tmp_path: Path, marker: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    evil, truncated, other, mismatch = (tmp_path / n for n in ("evil.ckpt", "truncated.ckpt", "other.ckpt", "mismatch.ckpt"))
    torch.save({"state_dict": {}, "loops": {}, "callbacks": _Payload(marker)}, evil)
    torch.save({"state_dict": {"rbm.W": torch.zeros(128, 64)}, "loops": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    other.write_text("not a checkpoint\n")
    torch.save({"state_dict": {"rbm.W": torch.zeros(3, 3)}, "loops": {}}, mismatch)
    return {
        "pickled object": (evil, ("could run arbitrary code", "was not loaded")),
        "truncated": (truncated, ("not a readable checkpoint", "truncated")),
        "other format": (other, ("not a readable checkpoint",)),
        "another model": (mismatch, ("do not fit the configured model", "rbm.W")),
        "missing": (tmp_path / "nowhere", ("no such run directory or checkpoint",)),
    }


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("case", ["pickled object", "truncated", "other format", "another model", "missing"])
def test_a_bad_resume_checkpoint_is_refused_and_never_executed(tmp_path, case):
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Payload(tmp_path / "live")))
    assert (tmp_path / "live").exists(), "the payload must work when unpickled, or this test proves nothing"
    path, needles = _resume_files(tmp_path, marker)[case]
    run = tmp_path / "run"
    proc = run_cli(["unsupnn-train", *FAST, f"resume={path}", f"hydra.run.dir={run}"], cwd=tmp_path)
    _fails_cleanly(proc, run, f"resume={path}", *needles)
    assert not marker.exists()


def test_an_output_directory_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = run_cli(["unsupnn-train", *FAST, f"hydra.run.dir={blocker / 'run'}"], cwd=tmp_path)
    _fails_cleanly(proc, None, str(blocker / "run"), "Not a directory", "hydra.run.dir")


def test_divergence_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    # Gaussian visible units on unscaled-for-them digits with a large step: finite for two epochs, then inf.
    run = tmp_path / "run"
    proc = run_cli(["unsupnn-train", "model.visible=gaussian", "model.lr=0.3", "data.batch_size=256",
                    "logger=none", "callbacks=none", "trainer.max_epochs=30", f"hydra.run.dir={run}"], cwd=tmp_path)
    message = _fails_cleanly(proc, run, "training diverged at step", "model.lr=0.3", "Lower the learning rate")
    last = run / "checkpoints" / "pretrain" / "last.ckpt"
    assert f"the last good checkpoint is {last}" in message
    ckpt = torch.load(last, weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert ckpt["epoch"] < 29  # stopped early, not at max_epochs


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem that fills up: a 150 KiB tmpfs (needs root and mount rights, else skipped; the
    in-process test in test_resume.py simulates the same failure everywhere)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_disk_that_fills_up_during_a_checkpoint(tmp_path, small_disk):
    # One checkpoint of this RBM is ~90 KB: the first fits, the second (last.ckpt) does not.
    run = small_disk / "run"
    proc = run_cli(["unsupnn-train", *FAST, f"hydra.run.dir={run}"], cwd=tmp_path)
    _fails_cleanly(proc, run, "No space left on device", "earlier checkpoints are intact", "resume=")
    written = sorted((run / "checkpoints").rglob("*.ckpt"))
    assert written
    for path in written:
        torch.load(path, weights_only=True)
    assert not [p for p in (run / "checkpoints").rglob("*.tmp")]


def _encoder_files(tmp_path: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    import json as _json

    from safetensors.torch import save_file

    from unsupnn import save_encoder
    from unsupnn.io import FORMAT_VERSION
    from unsupnn.nn import RBM

    wrong_size = save_encoder(RBM(n_visible=10, n_hidden=4), tmp_path / "ten_inputs.safetensors")
    truncated = save_encoder(RBM(n_visible=64, n_hidden=30), tmp_path / "truncated.safetensors")
    truncated.write_bytes(truncated.read_bytes()[:-200])
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    newer = tmp_path / "newer.safetensors"
    save_file({"0.weight": torch.zeros(4, 64), "0.bias": torch.zeros(4)}, str(newer), metadata={
        "format": "unsupnn.encoder", "format_version": str(FORMAT_VERSION + 1),
        "spec": _json.dumps([{"kind": "linear", "in_features": 64, "out_features": 4}])})
    return {
        "input size does not match the data": (wrong_size, ("takes 10 inputs", "64 features", "drop classifier.encoder")),
        "truncated": (truncated, ("truncated",)),
        "another format": (other, ("not an unsupnn encoder",)),
        "newer format version": (newer, ("newer than this unsupnn reads", "upgrade unsupnn")),
    }


@pytest.mark.parametrize("case", ["input size does not match the data", "truncated", "another format", "newer format version"])
def test_a_bad_encoder_file_given_to_the_pipeline_is_refused(tmp_path, case):
    path, needles = _encoder_files(tmp_path)[case]
    run = tmp_path / "run"
    proc = run_cli(["unsupnn-pretrain", f"classifier.encoder={path}", *FAST, f"hydra.run.dir={run}"], cwd=tmp_path)
    _fails_cleanly(proc, run, *needles)


def test_the_pipeline_evaluates_a_given_encoder_without_pretraining(tmp_path):
    from unsupnn import save_encoder
    from unsupnn.nn import RBM

    path = save_encoder(RBM(n_visible=64, n_hidden=12), tmp_path / "given.safetensors", metadata={"model": "rbm"})
    run = tmp_path / "run"
    proc = run_cli(["unsupnn-pretrain", f"classifier.encoder={path}", "classifier.max_epochs=1",
                    "classifier.methods=[probe,features_logistic]", *FAST, f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json as _json

    results = _json.loads((run / "results.json").read_text())
    assert [r["method"] for r in results["rows"]] == ["probe", "features_logistic"]
    assert results["pretrain"]["encoder"] == str(path)
    assert results["pretrain"]["model"] == "rbm (loaded)"  # named after the model its header says made it
    assert not (run / "checkpoints" / "pretrain").exists()  # nothing was pretrained
