"""The registry of on-disk formats: each turns a folder into a :class:`Listing` of images to decode.

A format's ``index`` function is cheap (it lists files and reads label tables); decoding, the slow
part, is shared by all formats and cached. To add a format, write an ``index`` function and
register it in :data:`FORMATS` with its options and their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from trainable.data.decode import RASTER_SUFFIXES
from trainable.data.folders import list_class_folders
from trainable.data.tables import list_split_tables, list_table


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
                per_split = value if isinstance(value, Mapping) else {"": value}
                if isinstance(value, Mapping):
                    problems += _check_splits(value, f"{where}.file_pattern")
                for split, pattern in per_split.items():
                    patterns = [pattern] if isinstance(pattern, str) else pattern
                    if not (isinstance(patterns, list) and patterns
                            and all(isinstance(p, str) and "{id}" in p for p in patterns)):
                        name = f"{where}.file_pattern" + (f".{split}" if split else "")
                        problems.append(f"{name}: must be a path with an '{{id}}' field "
                                        f"(or a list of them, one per band), got {pattern!r}")
            elif key == "csv":
                if isinstance(value, Mapping):
                    problems += _check_splits(value, f"{where}.csv")
                    problems += [f"{where}.csv.{split}: must be a file name, got {name!r}"
                                 for split, name in value.items() if not isinstance(name, str) or not name]
                elif value is not None and not isinstance(value, str):
                    problems.append(f"{where}.csv: must be a file name, or one per split "
                                    f"({{train: train.csv, val: val.csv}}), got {value!r}")
            elif not isinstance(value, str) or not value:
                problems.append(f"{where}.{key}: must be a column name, got {value!r}")
        csv, pattern = options.get("csv"), options.get("file_pattern")
        if isinstance(pattern, Mapping) and not (isinstance(csv, Mapping) and set(csv) == set(pattern)):
            problems.append(f"{where}.file_pattern: one pattern per split needs one table per split "
                            f"with the same splits in {where}.csv, got csv {csv!r}")
        return problems


def _check_splits(per_split: Mapping, where: str) -> list[str]:
    """A per-split mapping names known splits, the training one among them."""
    unknown = [str(s) for s in per_split if s not in ("train", "val", "test")]
    if unknown:
        return [f"{where}: {', '.join(unknown)} is not a split (train, val, test)"]
    if "train" not in per_split:
        return [f"{where}: must name the train split's table (the others are carved from it)"]
    return []


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
        csv, pattern = options["csv"], options["file_pattern"]
        if not isinstance(csv, Mapping):
            table = list_table(root, csv, options["id_column"], options["label_column"], pattern)
            return Listing(items=table.files, labels=table.labels, split_of=None,
                           metadata=table.metadata, layout=f"label table {table.csv_path.name}",
                           expand_grey=expand_grey)
        patterns = pattern if isinstance(pattern, Mapping) else {split: pattern for split in csv}
        tables = list_split_tables(root, dict(csv), options["id_column"], options["label_column"],
                                   patterns)
        return Listing(
            items=[f for t in tables.values() for f in t.files],
            labels=[label for t in tables.values() for label in t.labels],
            split_of=[split for split, t in tables.items() for _ in t.files],
            metadata=pd.concat([t.metadata for t in tables.values()], ignore_index=True),
            layout="label tables " + ", ".join(f"{t.csv_path.name} ({split})" for split, t in tables.items()),
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
               "label table + numbered image files (Kaggle CIFAR-10: id,label + train/<id>.png), or "
               "one table per shipped split (csv: {train: train.csv, val: val.csv})",
               options={"csv": None, "id_column": "id", "label_column": "label",
                        "file_pattern": "train/{id}.png"}),
        Format("digits", _digits, "scikit-learn's bundled 8x8 handwritten digits (no files)",
               needs_path=False),
    )
}
