from unsupnn.data.base import ArrayDataModule
from unsupnn.data.digits import DigitsDataModule
from unsupnn.data.loader import InMemoryLoader

__all__ = ["ArrayDataModule", "DigitsDataModule", "InMemoryLoader"]
