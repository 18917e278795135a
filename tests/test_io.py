"""The encoder file: safetensors + architecture metadata, loaded without pickle."""

from __future__ import annotations

import json
import struct

import pytest
import torch

import unsupnn
from unsupnn.io import FORMAT_VERSION, EncoderFormatError, build_encoder, load_encoder, save_encoder
from unsupnn.lit.rbm import LitRBM
from unsupnn.nn.rbm import RBM


def test_rbm_encoder_round_trip_gives_identical_features(tmp_path):
    torch.manual_seed(0)
    rbm = RBM(n_visible=20, n_hidden=7)
    with torch.no_grad():
        rbm.c.normal_()
    path = save_encoder(rbm, tmp_path / "enc.safetensors", metadata={"note": "test"})
    enc = load_encoder(path)
    assert isinstance(enc, torch.nn.Sequential) and not enc.training
    assert (enc.in_features, enc.out_features) == (20, 7)
    x = torch.rand(5, 20)
    assert torch.equal(enc(x), rbm.transform(x))
    assert unsupnn.io.read_encoder_header(path)["metadata"] == {"note": "test"}


def test_lightning_module_exports_the_same_feature_map(tmp_path):
    model = LitRBM(n_features=10, n_hidden=4)
    enc = load_encoder(save_encoder(model, tmp_path / "e.safetensors"), freeze=True)
    x = torch.rand(3, 10)
    assert torch.equal(enc(x), model(x))
    assert not any(p.requires_grad for p in enc.parameters())


def test_a_loaded_encoder_can_be_saved_again(tmp_path):
    enc = build_encoder([{"kind": "linear", "in_features": 3, "out_features": 2}, {"kind": "relu"}])
    again = load_encoder(save_encoder(load_encoder(save_encoder(enc, tmp_path / "a.safetensors")), tmp_path / "b.safetensors"))
    x = torch.randn(4, 3)
    assert torch.equal(again(x), enc(x))


def test_file_is_plain_safetensors_with_no_pickle(tmp_path):
    path = save_encoder(RBM(n_visible=4, n_hidden=2), tmp_path / "e.safetensors")
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"]["format"] == "unsupnn.encoder"
    assert b"\x80\x04" not in raw[: 8 + header_len]  # no pickle protocol marker in the header


def test_truncated_file_is_refused_with_a_clear_error(tmp_path):
    path = save_encoder(RBM(n_visible=30, n_hidden=20), tmp_path / "e.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(EncoderFormatError, match="truncated"):
        load_encoder(path)


def test_other_formats_and_newer_versions_are_refused(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(EncoderFormatError, match="not an unsupnn encoder"):
        load_encoder(other)
    newer = tmp_path / "newer.safetensors"
    save_file({"0.weight": torch.zeros(2, 2), "0.bias": torch.zeros(2)}, str(newer), metadata={
        "format": "unsupnn.encoder", "format_version": str(FORMAT_VERSION + 1),
        "spec": json.dumps([{"kind": "linear", "in_features": 2, "out_features": 2}]),
    })
    with pytest.raises(EncoderFormatError, match="upgrade unsupnn"):
        load_encoder(newer)
    with pytest.raises(FileNotFoundError, match="no encoder file"):
        load_encoder(tmp_path / "missing.safetensors")


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "e.safetensors"
    save_encoder(RBM(n_visible=4, n_hidden=2), path)
    first = path.read_bytes()
    with pytest.raises(TypeError):
        save_encoder(object(), path)  # refused before anything is written
    assert path.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["e.safetensors"]


def test_bad_specs_are_refused():
    with pytest.raises(EncoderFormatError, match="known kinds"):
        build_encoder([{"kind": "linear", "in_features": 2, "out_features": 2}, {"kind": "conv"}])
    with pytest.raises(EncoderFormatError, match="previous layer"):
        build_encoder([{"kind": "linear", "in_features": 2, "out_features": 3}, {"kind": "linear", "in_features": 4, "out_features": 1}])


def test_registry_builds_and_lists_models():
    assert "rbm" in unsupnn.list_models()
    assert isinstance(unsupnn.build_model("rbm", n_visible=3, n_hidden=2), RBM)
    with pytest.raises(KeyError, match="registered models"):
        unsupnn.build_model("nope")
    with pytest.raises(ValueError, match="already registered"):
        unsupnn.registry.register_model("rbm")(RBM)
