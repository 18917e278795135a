"""torch.hub entry point: a pretrained unsupnn encoder by name, without installing the package.

    encoder = torch.hub.load("path/to/unsupnn", "encoder", path="encoder.safetensors", source="local")

``path`` is an exported encoder (.safetensors) or a training checkpoint (.ckpt); ``map_location`` and
``freeze`` as in ``unsupnn.load_encoder``, which this is.
"""

dependencies = ["torch", "safetensors"]

from unsupnn.io import load_encoder as encoder  # noqa: E402  (torch.hub convention: `dependencies` comes first)

__all__ = ["encoder"]
