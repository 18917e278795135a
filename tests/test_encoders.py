"""Pretrained encoders in other PyTorch code: training checkpoints, torch.hub, torch.compile / export, ONNX."""

from __future__ import annotations

import pickle
import runpy
import subprocess
import sys

import pytest
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from conftest import REPO, make_cfg

import unsupnn
from unsupnn import tasks
from unsupnn.io import EncoderFormatError, build_encoder, load_encoder, read_checkpoint_model, save_encoder

# For each registered model: constructor arguments of a small instance and its own feature map.
FEATURE_MAPS = {
    "rbm": (dict(n_visible=12, n_hidden=5), "transform"),
    "autoencoder": (dict(n_features=12, hidden_dims=[8, 5], activation="relu", code_activation="sigmoid"), "encode"),
}
# Training runs to checkpoint: (overrides, the LightningModule attribute holding the plain model, its feature map).
RUNS = {
    "rbm": (["model=rbm", "model.n_hidden=8", "model.persistent=true"], "rbm", "transform"),
    "ae": (["model=ae", "model.hidden_dims=[16,8]", "model.activation=relu"],
           "autoencoder", "encode"),
}


def randomised(name: str) -> nn.Module:
    """A registered model with every parameter drawn at random, so no bias is trivially zero."""
    torch.manual_seed(0)
    model = unsupnn.build_model(name, **FEATURE_MAPS[name][0])
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """One real one-epoch training run per entry of RUNS: (in-memory plain model, run directory)."""
    out = {}
    for name, (overrides, attribute, method) in RUNS.items():
        run_dir = tmp_path_factory.mktemp(name)
        cfg = make_cfg("train", [*overrides, "trainer.max_epochs=1", "logger=none"], run_dir)
        model = tasks.train(cfg)["model"]
        out[name] = (getattr(model, attribute), method, run_dir)
    return out


@pytest.mark.parametrize("name", unsupnn.list_models())
def test_every_registered_model_exports_exactly_its_feature_map(name, tmp_path):
    assert name in FEATURE_MAPS, f"model {name!r} is registered but FEATURE_MAPS has no entry: add one"
    model, method = randomised(name), FEATURE_MAPS[name][1]
    encoder = load_encoder(save_encoder(model, tmp_path / "e.safetensors"))
    x = torch.rand(9, 12)
    assert torch.equal(encoder(x), getattr(model, method)(x))
    assert set(type(m).__module__ for m in encoder.modules()) == {"torch.nn.modules.container", "torch.nn.modules.linear",
                                                                 "torch.nn.modules.activation"}


@pytest.mark.parametrize("name", RUNS)
def test_checkpoint_and_exported_file_give_the_trained_models_features(runs, name):
    plain, method, run_dir = runs[name]
    x = torch.rand(11, plain.encoder_spec()[0]["in_features"])
    expected = getattr(plain, method)(x)
    from_ckpt = load_encoder(run_dir / "checkpoints" / "pretrain" / "last.ckpt")
    from_file = load_encoder(run_dir / "encoder.safetensors")
    for encoder in (from_ckpt, from_file):
        assert not encoder.training and encoder.out_features == expected.shape[1]
        assert torch.equal(encoder(x), expected)
    assert type(read_checkpoint_model(run_dir / "checkpoints" / "pretrain" / "last.ckpt")) is type(plain)


def test_a_classifier_checkpoint_yields_its_fine_tuned_encoder(tmp_path):
    import pytorch_lightning as pl

    from unsupnn.lit.classifier import LitClassifier

    spec = randomised("rbm").encoder_spec()
    clf = LitClassifier(encoder_spec=spec, n_classes=3, lr=0.1)
    x, y = torch.rand(32, 12), torch.randint(0, 3, (32,))
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(clf, train_dataloaders=torch.utils.data.DataLoader(list(zip(x, y)), batch_size=8))
    trainer.save_checkpoint(tmp_path / "finetune.ckpt")
    encoder = load_encoder(tmp_path / "finetune.ckpt", freeze=True)
    assert torch.equal(encoder(x), clf.encoder(x))
    assert not any(p.requires_grad for p in encoder.parameters())


def test_load_encoder_imports_no_lightning_hydra_or_tensorboard(runs):
    ckpt = runs["rbm"][2] / "checkpoints" / "pretrain" / "last.ckpt"
    code = (
        "import sys, unsupnn, unsupnn.sklearn\n"
        f"unsupnn.load_encoder({str(ckpt)!r}); unsupnn.load_encoder({str(ckpt.parents[2] / 'encoder.safetensors')!r})\n"
        "heavy = ('pytorch_lightning', 'lightning', 'lightning_fabric', 'hydra', 'omegaconf', 'tensorboard', 'torchmetrics')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


class _Payload:
    """Unpickling this creates a file: the proof that a loader ran code from the file it read."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_payload_in_a_checkpoint_is_refused_without_running(tmp_path):
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(_Payload(live)))
    assert live.exists(), "the payload must work when unpickled, or this test proves nothing"

    marker = tmp_path / "pwned"
    zipped, raw = tmp_path / "evil.ckpt", tmp_path / "raw.ckpt"
    torch.save({"state_dict": {"rbm.W": torch.zeros(2, 2)}, "hyper_parameters": _Payload(marker)}, zipped)
    raw.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    for path in (zipped, raw):
        with pytest.raises(EncoderFormatError, match="could run arbitrary code, so it was not loaded"):
            load_encoder(path)
    assert not marker.exists()


def test_torch_files_that_are_not_unsupnn_checkpoints_are_refused(tmp_path):
    plain = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(EncoderFormatError, match="not a checkpoint of an unsupnn training run"):
        load_encoder(plain)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"net.weight": torch.zeros(2)}, "hyper_parameters": {}}, foreign)
    with pytest.raises(EncoderFormatError, match="cannot tell which unsupnn model"):
        load_encoder(foreign)
    incomplete = tmp_path / "incomplete.ckpt"
    torch.save({"state_dict": {"rbm.W": torch.zeros(2, 3)}, "hyper_parameters": {"n_hidden": 2}}, incomplete)
    with pytest.raises(EncoderFormatError, match="KeyError.*n_features"):
        load_encoder(incomplete)
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"rbm.W": torch.zeros(50, 50)}, "hyper_parameters": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-200])
    with pytest.raises(EncoderFormatError, match="truncated"):
        load_encoder(truncated)


def test_torch_hub_loads_the_encoder_by_name(runs):
    path = runs["rbm"][2] / "encoder.safetensors"
    encoder = torch.hub.load(str(REPO), "encoder", path=path, source="local", freeze=True)
    x = torch.rand(4, 64)
    assert torch.equal(encoder(x), load_encoder(path)(x))
    assert not any(p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize("name", RUNS)
def test_loaded_encoders_compile_and_export(runs, name, tmp_path):
    encoder = load_encoder(runs[name][2] / "checkpoints" / "pretrain" / "last.ckpt")
    x = torch.rand(5, encoder.in_features)
    expected = encoder(x)
    torch.testing.assert_close(torch.compile(encoder)(x), expected, rtol=1e-5, atol=1e-6)

    batch = torch.export.Dim("batch")
    program = torch.export.export(encoder, (x,), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "encoder.pt2")
    reloaded = torch.export.load(tmp_path / "encoder.pt2").module()
    assert torch.equal(reloaded(x), expected)
    other = torch.rand(17, encoder.in_features)
    assert torch.equal(reloaded(other), encoder(other))


def test_a_compiled_encoder_saves_without_its_wrapper_prefix(tmp_path):
    encoder = build_encoder(randomised("rbm").encoder_spec())
    path = save_encoder(torch.compile(encoder), tmp_path / "e.safetensors")
    x = torch.rand(3, 12)
    assert torch.equal(load_encoder(path)(x), encoder(x))


def test_onnx_export_runs_in_onnxruntime(runs, tmp_path):
    pytest.importorskip("onnxscript", reason="ONNX export needs the optional extra: pip install 'unsupnn[onnx]'")
    ort = pytest.importorskip("onnxruntime", reason="pip install 'unsupnn[onnx]'")
    encoder = load_encoder(runs["ae"][2] / "encoder.safetensors")
    x = torch.rand(5, encoder.in_features)
    torch.onnx.export(encoder, (x,), tmp_path / "encoder.onnx", input_names=["x"], output_names=["features"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    session = ort.InferenceSession(str(tmp_path / "encoder.onnx"))
    other = torch.rand(13, encoder.in_features)
    (features,) = session.run(None, {"x": other.numpy()})
    torch.testing.assert_close(torch.from_numpy(features), encoder(other).detach(), rtol=1e-5, atol=1e-6)


def test_freeze_keeps_the_encoder_fixed_under_a_new_head_and_fine_tuning_moves_it(tmp_path):
    path = save_encoder(randomised("autoencoder"), tmp_path / "e.safetensors")
    x, y = torch.rand(64, 12), torch.randint(0, 3, (64,))
    for freeze in (True, False):
        encoder = load_encoder(path, freeze=freeze)
        model = nn.Sequential(encoder, nn.Linear(encoder.out_features, 3))
        before = [p.clone() for p in encoder.parameters()]
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        moved = any(not torch.equal(a, b) for a, b in zip(before, encoder.parameters()))
        assert moved is not freeze


def test_the_new_head_example_trains_frozen_and_fine_tuned():
    example = runpy.run_path(str(REPO / "examples" / "encoder_in_your_model.py"))
    # One thread: on 2 shared cores, torch's pool waiting on busy cores made this 4x slower.
    with threadpool_limits(limits=1):
        accuracy = example["main"]([])
    assert accuracy["frozen"] > 0.85  # a linear head on unsupervised features
    assert accuracy["fine-tuned"] > accuracy["frozen"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_map_location_puts_the_encoder_on_the_gpu(runs):
    for name in ("encoder.safetensors", "checkpoints/pretrain/last.ckpt"):
        encoder = load_encoder(runs["rbm"][2] / name, map_location="cuda")
        assert encoder[0].weight.is_cuda and encoder(torch.rand(2, 64, device="cuda")).is_cuda
