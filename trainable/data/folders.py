"""Class-folder layouts: one sub-folder per class, optionally inside split folders.

Three layouts are recognised, in this order:

- split folders: ``ROOT/{train,val,test}/<class>/<file>`` (DeepLense Common Task 1, Keras
  ``flow_from_directory`` trees); ``valid`` and ``validation`` also name the validation split;
- split-prefixed class folders: ``ROOT/{train,val,test}_<class>/<file>`` (the later DeepLense
  lens-finding set: ``train_lenses/ train_nonlenses/ test_lenses/ test_nonlenses/``);
- plain class folders: ``ROOT/<class>/<file>`` (torchvision ``ImageFolder``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trainable.errors import DataError

SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test"}
_PREFIXED = re.compile(r"^(train|val|valid|validation|test)_(.+)$")
# Left by archive tools and file browsers; never a class.
_IGNORED = {"__MACOSX", ".ipynb_checkpoints"}


@dataclass
class FolderListing:
    """Files found in a class-folder layout, in a fixed order."""

    files: list[Path]
    class_of: list[str]
    split_of: list[str]  # "train", "val", "test", or "" when the layout has no split folders
    layout: str


def natural_key(path: Path) -> list:
    """Sort key that puts ``2.npy`` before ``10.npy``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in _IGNORED)


def _class_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    files = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith(".")),
                   key=natural_key)
    if not files:
        raise DataError(f"empty class folder: {folder} has no {'/'.join(extensions)} files")
    return files


def list_class_folders(root: Path, extensions: tuple[str, ...]) -> FolderListing:
    """Find every image file under ``root`` in one of the class-folder layouts.

    Args:
        root: The data set's folder.
        extensions: Lower-case file suffixes to take, e.g. ``(".npy",)``.

    Raises:
        DataError: no class folders, an empty class folder, a split folder without classes,
            or folders that mix layouts.
    """
    subdirs = _subdirs(root)
    if not subdirs:
        raise DataError(f"{root}: no class folders found; expected ROOT/<class>/, "
                        f"ROOT/train/<class>/ or ROOT/train_<class>/")
    names = [d.name for d in subdirs]
    split_dirs = [d for d in subdirs if d.name in SPLIT_ALIASES]
    prefixed = [d for d in subdirs if _PREFIXED.match(d.name)]

    groups: list[tuple[Path, str, str]] = []  # (folder, class, split)
    if split_dirs:
        others = [n for n in names if n not in SPLIT_ALIASES]
        if others:
            raise DataError(f"{root}: folder {others[0]!r} sits beside split folders "
                            f"{', '.join(d.name for d in split_dirs)}; move it out of the data set")
        if "train" not in {SPLIT_ALIASES[d.name] for d in split_dirs}:
            raise DataError(f"{root}: has {', '.join(names)} but no train/ folder")
        for split_dir in split_dirs:
            classes = _subdirs(split_dir)
            if not classes:
                raise DataError(f"{split_dir}: split folder has no class folders")
            groups += [(c, c.name, SPLIT_ALIASES[split_dir.name]) for c in classes]
        layout = "split folders"
    elif prefixed and len(prefixed) == len(subdirs):
        for d in subdirs:
            split, cls = _PREFIXED.match(d.name).groups()
            groups.append((d, cls, SPLIT_ALIASES[split]))
        if "train" not in {g[2] for g in groups}:
            raise DataError(f"{root}: has {', '.join(names)} but no train_<class>/ folder")
        layout = "split-prefixed class folders"
    else:
        groups = [(d, d.name, "") for d in subdirs]
        layout = "class folders"

    files, class_of, split_of = [], [], []
    for folder, cls, split in groups:
        found = _class_files(folder, extensions)
        files += found
        class_of += [cls] * len(found)
        split_of += [split] * len(found)
    return FolderListing(files, class_of, split_of, layout)
