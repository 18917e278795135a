"""Model registry: one builder per model name, as torchvision and timm do it."""

from __future__ import annotations

from typing import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable:
    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is already registered ({_MODELS[name]!r})")
        _MODELS[name] = builder
        return builder

    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the plain-torch model registered as ``name`` (keyword arguments only)."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)
