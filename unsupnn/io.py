"""The encoder file format: safetensors weights plus the architecture as JSON metadata.

``load_encoder`` also reads the checkpoints of unsupnn training runs (``.ckpt``), with
``torch.load(weights_only=True)``: loading never unpickles arbitrary objects. The architecture is rebuilt
from a small vocabulary of standard torch layers. No Lightning, Hydra or TensorBoard import here, so an
encoder drops into any PyTorch program.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

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


def strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State-dict keys without the ``_orig_mod.`` of torch.compile and the leading ``module.`` of DDP."""
    out = {}
    for key, value in state.items():
        key = key.replace("_orig_mod.", "")
        out[key.removeprefix("module.")] = value
    return out


def _encoder_parts(obj: Any) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """(spec, state dict) of an encoder built by build_encoder or of a model exposing its encoder."""
    if hasattr(obj, "encoder_spec") and hasattr(obj, "encoder_state_dict"):
        return obj.encoder_spec(), obj.encoder_state_dict()
    if isinstance(obj, nn.Module) and isinstance(getattr(obj, "spec", None), list):
        return obj.spec, strip_wrapper_prefixes(obj.state_dict())
    raise TypeError(
        f"cannot save a {type(obj).__name__} as an encoder: pass a module made by unsupnn.build_encoder / "
        "load_encoder, or a model with encoder_spec() and encoder_state_dict() (RBM, autoencoder, their "
        "Lightning modules, the scikit-learn transformers)"
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, flushed to disk and then
    renamed over ``path`` (atomic on one filesystem): a kill leaves the old file or the new one, never half
    of one. An OSError (disk full, folder not writable) leaves ``path`` as it was and no temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from the user's group
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_encoder(obj: Any, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write an encoder to ``path`` (safetensors), atomically: a kill leaves the old file or the new one."""
    from safetensors.torch import save

    spec, state = _encoder_parts(obj)
    build_encoder(spec)  # refuse to write a spec that could not be loaded back
    header = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "spec": json.dumps(spec),
        "metadata": json.dumps(metadata or {}),
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    return atomic_write(path, save(tensors, metadata=header))


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


# checkpoints of training runs ----------------------------------------------------------------------
_CHECKPOINT_READERS: dict[str, Callable[[dict[str, Any]], Any]] = {}


def register_checkpoint_reader(attribute: str) -> Callable:
    """Teach ``load_encoder`` to read the Lightning checkpoints of one model (a decorator).

    ``attribute`` is where the LightningModule keeps the plain model (``LitRBM.rbm``: ``"rbm"``), so its
    weights are the checkpoint's ``<attribute>.*`` entries. The decorated function takes the checkpoint's
    ``hyper_parameters`` (plain values) and returns that plain model freshly built, one with
    ``encoder_spec()`` and ``encoder_state_dict()`` (or a module made by ``build_encoder``); the weights
    are then loaded into it strictly. Registered next to each model, so this file names none of them.
    """

    def wrap(build: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        if attribute in _CHECKPOINT_READERS:
            raise ValueError(f"a checkpoint reader for '{attribute}.*' weights is already registered")
        _CHECKPOINT_READERS[attribute] = build
        return build

    return wrap


# LitClassifier checkpoints (probe, finetune) describe their encoder themselves.
register_checkpoint_reader("encoder")(lambda hparams: build_encoder(hparams["encoder_spec"]))


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (or, in its legacy format, a pickle); safetensors starts with
    an 8-byte header length followed by the JSON header's ``{``."""
    with open(path, "rb") as f:
        head = f.read(9)
    return head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[8:9] != b"{")


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a torch checkpoint (``.ckpt``) rather than an exported encoder, by its content."""
    path = Path(path)
    return path.is_file() and _looks_like_torch_file(path)


def read_checkpoint_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Any:
    """The plain model (RBM, autoencoder, classifier encoder) inside an unsupnn training checkpoint.

    Read with ``torch.load(weights_only=True)``: a checkpoint holding anything but tensors and plain
    values is refused before any of its code can run.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0]
        raise EncoderFormatError(
            f"{path} holds Python objects besides tensors and plain values, and unpickling them could run "
            f"arbitrary code, so it was not loaded ({reason}). Export the encoder where the checkpoint was "
            "made and is trusted (unsupnn.save_encoder) and load that .safetensors file instead"
        ) from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile) as err:  # torch reports damage in all of these
        raise EncoderFormatError(f"{path} is not a readable torch checkpoint ({err}); it may be truncated") from None
    if not isinstance(ckpt, dict) or not all(isinstance(ckpt.get(k), dict) for k in ("state_dict", "hyper_parameters")):
        raise EncoderFormatError(
            f"{path} is a torch file but not a checkpoint of an unsupnn training run (it needs 'state_dict' and "
            "'hyper_parameters'); pass a run's checkpoints/<phase>/*.ckpt or its encoder.safetensors"
        )
    state = strip_wrapper_prefixes(ckpt["state_dict"])
    owners = [a for a in _CHECKPOINT_READERS if any(k.startswith(a + ".") for k in state)]
    if len(owners) != 1:
        raise EncoderFormatError(
            f"{path}: cannot tell which unsupnn model wrote this checkpoint (weights under "
            f"{sorted({k.split('.')[0] for k in state})}, readers registered for {sorted(_CHECKPOINT_READERS)}); "
            "import the package that defines the model first"
        )
    attribute = owners[0]
    own = {k[len(attribute) + 1 :]: v for k, v in state.items() if k.startswith(attribute + ".")}
    try:
        model = _CHECKPOINT_READERS[attribute](dict(ckpt["hyper_parameters"]))
        model.load_state_dict(own)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise EncoderFormatError(
            f"{path}: its hyper_parameters and '{attribute}.*' weights do not rebuild the model ({err!r}); "
            "it may come from another unsupnn version: export the encoder with the version that trained it"
        ) from None
    return model


def _assemble(spec: list[dict], state: dict[str, torch.Tensor], source: Path) -> nn.Sequential:
    """build_encoder(spec) holding exactly the tensors of ``state``."""
    encoder = build_encoder(spec)
    missing, unexpected = set(encoder.state_dict()) - set(state), set(state) - set(encoder.state_dict())
    if missing or unexpected:
        raise EncoderFormatError(
            f"{source}: weights do not match the stored architecture (missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}); the file is damaged: export it again"
        )
    try:
        encoder.load_state_dict(state)
    except RuntimeError as err:  # tensor shapes that disagree with the stored architecture
        raise EncoderFormatError(f"{source}: weights do not fit the stored architecture ({err}); export it again") from None
    return encoder


def load_encoder(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", freeze: bool = False) -> nn.Sequential:
    """Load an encoder as a plain ``nn.Sequential`` of standard torch layers, in eval mode.

    ``path`` is an exported encoder (``.safetensors``) or a checkpoint of an unsupnn training run
    (``.ckpt``). The module has ``in_features``, ``out_features`` and ``spec``; ``freeze=True`` also
    turns off its gradients.
    """
    path = Path(path)
    if is_checkpoint(path):
        spec, state = _encoder_parts(read_checkpoint_model(path, map_location=map_location))
    else:
        from safetensors.torch import load_file

        spec = read_encoder_header(path)["spec"]
        state = load_file(str(path), device=str(map_location))
    encoder = _assemble(spec, state, path).to(map_location).eval()
    if freeze:
        encoder.requires_grad_(False)
    return encoder
