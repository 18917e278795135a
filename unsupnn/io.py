"""The encoder file format: safetensors weights plus the architecture as JSON metadata.

Loading never unpickles anything: the architecture is rebuilt from a small vocabulary of standard torch
layers and the tensors are read by safetensors. No Lightning, Hydra or TensorBoard import here, so an
encoder drops into any PyTorch program.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "unsupnn.encoder"
FORMAT_VERSION = 1

_ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


class EncoderFormatError(ValueError):
    """An encoder file or architecture spec that cannot be used, with the reason and the fix."""


def build_encoder(spec: list[dict[str, Any]]) -> nn.Sequential:
    """A freshly initialised ``nn.Sequential`` from an architecture spec.

    The spec is a list of layers: ``{"kind": "linear", "in_features": 64, "out_features": 128}`` or an
    activation ``{"kind": "sigmoid"}`` (also relu, tanh, identity, leaky_relu, gelu, softplus).
    The module gets ``in_features``, ``out_features`` and ``spec`` attributes.
    """
    if not isinstance(spec, list) or not spec:
        raise EncoderFormatError(f"an encoder spec is a non-empty list of layers, got {spec!r}")
    layers: list[nn.Module] = []
    widths: list[int] = []
    for i, layer in enumerate(spec):
        kind = layer.get("kind") if isinstance(layer, dict) else None
        if kind == "linear":
            n_in, n_out = int(layer["in_features"]), int(layer["out_features"])
            if widths and widths[-1] != n_in:
                raise EncoderFormatError(f"layer {i} takes {n_in} inputs but the previous layer gives {widths[-1]}")
            widths += [n_in, n_out] if not widths else [n_out]
            layers.append(nn.Linear(n_in, n_out))
        elif kind in _ACTIVATIONS:
            layers.append(_ACTIVATIONS[kind]())
        else:
            raise EncoderFormatError(
                f"layer {i} of the encoder spec has kind {kind!r}; known kinds: linear, {', '.join(_ACTIVATIONS)}"
            )
    if not widths:
        raise EncoderFormatError("an encoder spec needs at least one linear layer")
    encoder = nn.Sequential(*layers)
    encoder.in_features, encoder.out_features = widths[0], widths[-1]
    encoder.spec = [dict(layer) for layer in spec]
    return encoder


def _encoder_parts(obj: Any) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """(spec, state dict) of an encoder built by build_encoder or of a model exposing its encoder."""
    if hasattr(obj, "encoder_spec") and hasattr(obj, "encoder_state_dict"):
        return obj.encoder_spec(), obj.encoder_state_dict()
    if isinstance(obj, nn.Module) and isinstance(getattr(obj, "spec", None), list):
        return obj.spec, obj.state_dict()
    raise TypeError(
        f"cannot save a {type(obj).__name__} as an encoder: pass a module made by unsupnn.build_encoder / "
        "load_encoder, or a model with encoder_spec() and encoder_state_dict() (RBM, autoencoder, their "
        "Lightning modules, the scikit-learn transformers)"
    )


def save_encoder(obj: Any, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write an encoder to ``path`` (safetensors), atomically: a kill leaves the old file or the new one."""
    from safetensors.torch import save_file

    spec, state = _encoder_parts(obj)
    build_encoder(spec)  # refuse to write a spec that could not be loaded back
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "spec": json.dumps(spec),
        "metadata": json.dumps(metadata or {}),
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_encoder_header(path: str | os.PathLike) -> dict[str, Any]:
    """The architecture and metadata stored with an encoder file, without loading the weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no encoder file at {path}: pass the .safetensors file a run exported")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for every kind of damage
        raise EncoderFormatError(
            f"{path} is not a readable safetensors encoder file ({err}); it may be truncated or of another "
            "format: export it again with unsupnn.save_encoder or unsupnn-train"
        ) from None
    if header.get("format") != FORMAT:
        raise EncoderFormatError(f"{path} is a safetensors file but not an unsupnn encoder (no '{FORMAT}' header)")
    version = int(header.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise EncoderFormatError(
            f"{path} uses encoder format version {version}, newer than this unsupnn reads ({FORMAT_VERSION}); "
            "upgrade unsupnn"
        )
    return {"spec": json.loads(header["spec"]), "metadata": json.loads(header.get("metadata", "{}"))}


def load_encoder(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", freeze: bool = False) -> nn.Sequential:
    """Load an exported encoder as a plain ``nn.Sequential`` of standard torch layers, in eval mode.

    The module has ``in_features`` and ``out_features``; ``freeze=True`` also turns off its gradients.
    """
    from safetensors.torch import load_file

    header = read_encoder_header(path)
    encoder = build_encoder(header["spec"])
    state = load_file(str(path), device=str(map_location))
    missing, unexpected = set(encoder.state_dict()) - set(state), set(state) - set(encoder.state_dict())
    if missing or unexpected:
        raise EncoderFormatError(
            f"{path}: weights do not match the stored architecture (missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}); the file is damaged: export it again"
        )
    try:
        encoder.load_state_dict(state)
    except RuntimeError as err:  # tensor shapes that disagree with the stored architecture
        raise EncoderFormatError(f"{path}: weights do not fit the stored architecture ({err}); export it again") from None
    encoder.to(map_location).eval()
    if freeze:
        encoder.requires_grad_(False)
    return encoder
