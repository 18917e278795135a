from unsupnn.data.base import ArrayDataModule
from unsupnn.data.digits import DigitsDataModule
from unsupnn.data.image_folder import ImageFolderDataModule
from unsupnn.data.loader import InMemoryLoader
from unsupnn.data.mapped import MappedLoader, MappedRows
from unsupnn.data.npy import NpyDataModule
from unsupnn.data.preprocessing import Preprocessing, load_preprocessing
from unsupnn.data.tabular import CSVDataModule
from unsupnn.data.vision import VisionDataModule

__all__ = [
    "ArrayDataModule",
    "CSVDataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "InMemoryLoader",
    "MappedLoader",
    "MappedRows",
    "NpyDataModule",
    "Preprocessing",
    "VisionDataModule",
    "load_preprocessing",
]
