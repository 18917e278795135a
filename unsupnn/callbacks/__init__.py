"""Lightning callbacks that show what a model learns (TensorBoard images)."""

from unsupnn.callbacks.images import ReconstructionImages

__all__ = ["ReconstructionImages"]
