"""The data layer: a ``data:`` block in, an in-memory :class:`ImageDataset` out.

    from trainable.data import load_dataset
    ds = load_dataset({"format": "npy_folders", "path": "data/substructure"})
    x_train, y_train = ds.split("train")

Formats: see :data:`FORMATS` (``python -m trainable.data --help`` lists them).
"""

from trainable.data.config import DataConfig
from trainable.data.dataset import ImageDataset
from trainable.data.formats import FORMATS
from trainable.data.load import load_dataset
from trainable.data.normalize import apply_normalization

__all__ = ["DataConfig", "FORMATS", "ImageDataset", "apply_normalization", "load_dataset"]
