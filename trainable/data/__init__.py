"""The data layer: a ``data:`` block in, an in-memory :class:`ImageDataset` out.

    from trainable.data import load_dataset
    ds = load_dataset({"format": "npy_folders", "path": "data/substructure"})
    x_train, y_train = ds.split("train")

Formats: see :data:`FORMATS` (``python -m trainable.data --help`` lists them).

The names below are imported on first use (PEP 562), so a ``data:`` block is checked
(``trainable.data.config``, ``trainable.data.formats``) without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"DataConfig": "trainable.data.config", "ImageDataset": "trainable.data.dataset",
          "FORMATS": "trainable.data.formats", "load_dataset": "trainable.data.load",
          "apply_normalization": "trainable.data.normalize"}

__all__ = ["DataConfig", "FORMATS", "ImageDataset", "apply_normalization", "load_dataset"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
