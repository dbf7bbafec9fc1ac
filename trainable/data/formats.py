"""The registry of on-disk formats: each turns a folder into a :class:`Listing` of images to decode.

A format's ``index`` function is cheap (it lists files and reads label tables); decoding, the slow
part, is shared by all formats and cached. To add a format, write an ``index`` function and
register it in :data:`FORMATS` with its options and their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from trainable.data.decode import RASTER_SUFFIXES
from trainable.data.folders import list_class_folders
from trainable.data.tables import list_table


@dataclass
class Listing:
    """What a format found on disk, before decoding.

    Attributes:
        items: Files of each image (several files are stacked as channels).
        labels: Raw label of each image: a class folder name or a label-table value.
        split_of: ``train``/``val``/``test`` per image when the set ships splits, else None.
        metadata: Per-image table (label tables' other columns), or None.
        layout: The layout found, in words.
        images: Decoded (N, C, H, W) images, for formats that come as arrays (no files).
        expand_grey: Whether 1-channel images may be repeated to 3 channels when a set
            mixes grey and colour files.
    """

    items: list[tuple[Path, ...]]
    labels: list[Any]
    split_of: list[str] | None
    metadata: pd.DataFrame | None
    layout: str
    images: np.ndarray | None = None
    expand_grey: bool = False


@dataclass(frozen=True)
class Format:
    """One on-disk format: how to list it, and the options it takes with their defaults."""

    name: str
    index: Callable[[Path, dict[str, Any]], Listing]
    description: str
    options: dict[str, Any] = field(default_factory=dict)
    needs_path: bool = True

    def check_options(self, options: dict[str, Any], where: str) -> list[str]:
        """Problems with this format's options, each naming its key."""
        problems = []
        for key, value in options.items():
            if key == "hdu":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    problems.append(f"{where}.hdu: must be a non-negative integer, got {value!r}")
            elif key == "file_pattern":
                patterns = [value] if isinstance(value, str) else value
                if not (isinstance(patterns, list) and patterns
                        and all(isinstance(p, str) and "{id}" in p for p in patterns)):
                    problems.append(f"{where}.file_pattern: must be a path with an '{{id}}' field "
                                    f"(or a list of them, one per band), got {value!r}")
            elif key == "csv":
                if value is not None and not isinstance(value, str):
                    problems.append(f"{where}.csv: must be a file name, got {value!r}")
            elif not isinstance(value, str) or not value:
                problems.append(f"{where}.{key}: must be a column name, got {value!r}")
        return problems


def _folders(extensions: tuple[str, ...], expand_grey: bool) -> Callable[[Path, dict], Listing]:
    def index(root: Path, options: dict[str, Any]) -> Listing:
        found = list_class_folders(root, extensions)
        has_splits = any(found.split_of)
        return Listing(items=[(f,) for f in found.files], labels=found.class_of,
                       split_of=found.split_of if has_splits else None, metadata=None,
                       layout=found.layout, expand_grey=expand_grey)
    return index


def _table(expand_grey: bool) -> Callable[[Path, dict], Listing]:
    def index(root: Path, options: dict[str, Any]) -> Listing:
        table = list_table(root, options["csv"], options["id_column"], options["label_column"],
                           options["file_pattern"])
        return Listing(items=table.files, labels=table.labels, split_of=None,
                       metadata=table.metadata, layout=f"label table {table.csv_path.name}",
                       expand_grey=expand_grey)
    return index


def _digits(root: Path | None, options: dict[str, Any]) -> Listing:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # 0..16 grey levels
    return Listing(items=[(Path(f"digits[{i}]"),) for i in range(len(images))],
                   labels=digits.target.tolist(), split_of=None, metadata=None,
                   layout="scikit-learn digits", images=images)


FORMATS: dict[str, Format] = {
    f.name: f for f in (
        Format("npy_folders", _folders((".npy",), expand_grey=False),
               "class folders of .npy arrays: ROOT/{train,val,test}/<class>/<n>.npy "
               "(DeepLense), ROOT/{train,test}_<class>/ or ROOT/<class>/"),
        Format("fits_csv", _table(expand_grey=False),
               "label table + one FITS file per row (Bologna lens-finding challenge)",
               options={"csv": "classifications.csv", "id_column": "ID",
                        "label_column": "is_lens", "file_pattern": "files/imageEUC_VIS-{id}.fits",
                        "hdu": 0}),
        Format("image_folders", _folders(RASTER_SUFFIXES, expand_grey=True),
               "class folders of PNG/JPEG images (ImageFolder / flow_from_directory), "
               "optionally inside train/ val/ test/"),
        Format("csv_images", _table(expand_grey=True),
               "label table + numbered image files (Kaggle CIFAR-10: id,label + train/<id>.png)",
               options={"csv": None, "id_column": "id", "label_column": "label",
                        "file_pattern": "train/{id}.png"}),
        Format("digits", _digits, "scikit-learn's bundled 8x8 handwritten digits (no files)",
               needs_path=False),
    )
}
