"""Lightning callbacks that show in TensorBoard what a model is doing (configs/callbacks/)."""

from unsupnn.callbacks.ais import AISLogLikelihood
from unsupnn.callbacks.embedding import log_embedding
from unsupnn.callbacks.images import Filters, ReconstructionImages, Samples
from unsupnn.callbacks.monitoring import Histograms, HParams

__all__ = ["AISLogLikelihood", "Filters", "HParams", "Histograms", "ReconstructionImages", "Samples", "log_embedding"]
