"""What a run shows in TensorBoard, read back from its real event files (and a real TensorBoard server)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import make_cfg

from unsupnn import tasks

EVERY_EPOCH = ["callbacks.histograms.every_n_epochs=1", "callbacks.filters.every_n_epochs=1",
               "callbacks.reconstructions.every_n_epochs=1", "callbacks.samples.every_n_epochs=1",
               "callbacks.samples.gibbs_steps=10", "callbacks.ais.every_n_epochs=1", "callbacks.ais.n_betas=200",
               "callbacks.ais.n_runs=20"]
TINY = ["trainer.max_epochs=2", "classifier.max_epochs=1", "model.n_hidden=16", *EVERY_EPOCH]


def tags(run_dir: Path, phase: str) -> dict[str, set[str]]:
    acc = EventAccumulator(str(run_dir / "tensorboard" / phase), size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    found = acc.Tags()
    return {kind: set(found.get(kind, [])) for kind in ("scalars", "histograms", "images")}


@pytest.fixture(scope="module")
def rbm_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("rbm_run")
    tasks.pretrain(make_cfg("pretrain", [*TINY, "model.persistent=true", "classifier.methods=[probe]"], run_dir))
    return run_dir


def test_rbm_run_shows_scalars_histograms_images_and_hparams(rbm_run):
    seen = tags(rbm_run, "pretrain")
    assert {"train/recon", "train/cd_loss", "val/recon", "val/pll", "val/fe_gap", "val/free_energy",
            "val/ais_ll", "val/ais_log_z", "val/ais_log_z_spread", "lr-SGD"} <= seen["scalars"]
    assert {"params/rbm.W", "params/rbm.b", "params/rbm.c", "activations/hidden"} <= seen["histograms"]
    assert {"filters", "samples", "val/reconstructions"} <= seen["images"]
    # The HParams view: hyperparameters with the final metrics.
    assert "hparams/val/recon" in seen["scalars"]
    acc = EventAccumulator(str(rbm_run / "tensorboard" / "pretrain"))
    acc.Reload()
    hparams = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"n_hidden" in hparams["_hparams_/session_start_info"] and b"hparams/val/recon" in hparams["_hparams_/experiment"]


def test_rbm_images_have_the_expected_layout(rbm_run):
    acc = EventAccumulator(str(rbm_run / "tensorboard" / "pretrain"), size_guidance={"images": 0})
    acc.Reload()
    recon = acc.Images("val/reconstructions")[-1]
    assert len(acc.Images("filters")) == 2  # every epoch, as configured
    # 16 validation digits of 8x8 in two rows (input, reconstruction), one pixel of padding around each.
    assert (recon.width, recon.height) == (16 * 9 + 1, 2 * 9 + 1)
    filters = acc.Images("filters")[-1]
    assert (filters.width, filters.height) == (4 * 9 + 1, 4 * 9 + 1)  # 16 hidden units as a 4x4 grid


def test_ais_estimate_is_a_sensible_log_likelihood(rbm_run):
    acc = EventAccumulator(str(rbm_run / "tensorboard" / "pretrain"))
    acc.Reload()
    ll = acc.Scalars("val/ais_ll")[-1].value
    # Per-example log-likelihood of 64 grey pixels: negative, and above that of a uniform binary model.
    assert -64 * 0.6932 < ll < 0


def test_classifier_phases_and_the_embedding_projector(rbm_run):
    seen = tags(rbm_run, "probe")
    assert {"train/loss", "train/acc", "val/acc", "test/acc", "lr-Adam"} <= seen["scalars"]
    assert {"params/encoder.0.weight", "params/head.weight"} <= seen["histograms"]
    projector = rbm_run / "tensorboard" / "embedding"
    assert "test_features" in (projector / "projector_config.pbtxt").read_text()
    [features] = projector.glob("*/test_features/tensors.tsv")
    rows = features.read_text().splitlines()
    assert len(rows) == 360 and len(rows[0].split("\t")) == 16  # every test digit, 16 features
    labels = (features.parent / "metadata.tsv").read_text().split()
    assert len(labels) == 360 and set(labels) == {str(d) for d in range(10)}


def test_denoising_autoencoder_shows_its_penalties_and_corrupted_inputs(tmp_path):
    tasks.train(make_cfg("train", ["model=dae", "trainer.max_epochs=2", *EVERY_EPOCH], tmp_path))
    seen = tags(tmp_path, "pretrain")
    assert {"train/recon", "val/recon", "train/code_mean", "val/code_mean", "val/denoise", "lr-Adam"} <= seen["scalars"]
    assert {"filters", "val/reconstructions"} <= seen["images"] and "samples" not in seen["images"]
    assert not any(t.startswith("val/ais") for t in seen["scalars"])  # AIS applies to RBMs only
    acc = EventAccumulator(str(tmp_path / "tensorboard" / "pretrain"), size_guidance={"images": 0})
    acc.Reload()
    assert acc.Images("val/reconstructions")[-1].height == 3 * 9 + 1  # input | corrupted | reconstruction


def test_no_logger_still_trains(tmp_path):
    out = tasks.train(make_cfg("train", ["trainer.max_epochs=1", "logger=none", *EVERY_EPOCH], tmp_path))
    assert "val/ais_ll" in out["summary"]["metrics"]  # AIS logs through the module, into results.json
    assert not (tmp_path / "tensorboard").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_server_serves_a_scalar_series(rbm_run):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(rbm_run), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        query = urllib.parse.urlencode({"run": "tensorboard/pretrain", "tag": "val/recon"})
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}"
        deadline, series = time.monotonic() + 90, None
        while time.monotonic() < deadline and series is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = json.loads(response.read())
                series = body if body else None
            except (OSError, ValueError):
                pass
            if series is None:
                time.sleep(1)
        assert series is not None, "TensorBoard did not serve val/recon within 90 s"
        assert len(series) == 2  # [wall_time, step, value] per epoch
        assert all(0 < value < 1 for _, _, value in series)
    finally:
        server.terminate()
        server.wait(timeout=30)
