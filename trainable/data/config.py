"""The ``data:`` block: one validated, serializable description of a data set on disk.

A block names a ``format`` (see :data:`trainable.data.formats.FORMATS`), a ``path`` and options.
Options common to every format are the fields of :class:`DataConfig`; format-specific options
(``label_column``, ``file_pattern``, ...) sit beside them in the same block and are checked against
the format's own list. Every problem in a block is reported at once, in one line naming the keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainable.errors import DataError

NORMALIZATIONS = ("minmax", "asinh", "standardize", "none")
NONFINITE_ACTIONS = ("error", "zero")
SHARING = ("auto", "object_store", "path")


@dataclass(frozen=True)
class DataConfig:
    """Where a data set is and how to turn it into tensors and splits.

    Attributes:
        format: On-disk layout, one of ``trainable.data.formats.FORMATS``.
        path: Root folder of the data set (not used by ``digits``).
        normalization: ``minmax`` scales each image to [0, 1] (how the DeepLense sets are made);
            ``asinh`` stretches each image by arcsinh(pixel / noise) first, keeping faint arcs
            visible next to a bright lens galaxy, then scales it to [0, 1];
            ``standardize`` subtracts the per-channel mean and divides by the per-channel standard
            deviation, both measured on the training split only; ``none`` keeps the decoded values.
        val_fraction: Fraction of images a carved validation split takes from the pool it is
            carved from (the whole set, or ``train/`` when the set ships its own ``test/``).
            Ignored when the set ships a ``val/`` folder.
        test_fraction: Likewise for the test split; ignored when the set ships a ``test/`` folder.
        seed: Seed of the stratified splits; the same seed gives the same splits.
        image_size: Resize every image to this size (an int for square, or ``[height, width]``),
            with antialiasing. Needed when a set mixes image shapes.
        nonfinite: What a NaN or infinite pixel does: ``error`` names the file and stops,
            ``zero`` replaces such pixels with 0.
        cache: Keep decoded arrays in ``cache_dir`` so the next load skips decoding. Keyed on the
            file list, sizes, modification times and decoding options: any change re-decodes.
        cache_dir: Cache folder; default ``$LENS_SEARCH_CACHE`` or ``~/.cache/lens-search``.
            Never inside the data set: the user's folders are not written to.
        workers: Processes decoding files on a first load; default: every core.
        simulate: Name (or ``{kind, n, seed}``) of the embedded simulator that the search driver
            runs to create the set when ``path`` does not exist. Not used by the loader itself.
        share: How a search hands the set to its trials: ``object_store`` (loaded once by the
            driver, one copy per node), ``path`` (each node reads ``path`` and memory-maps it),
            or ``auto``: the object store when the set is at most half of the smallest node's
            object store (see :mod:`search.tune.cluster`). Not used by the loader itself.
        options: Format-specific options (e.g. ``label_column``), defaults filled in.
    """

    format: str
    path: str | None = None
    normalization: str = "minmax"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    image_size: tuple[int, int] | None = None
    nonfinite: str = "error"
    cache: bool = True
    cache_dir: str | None = None
    workers: int | None = None
    simulate: str | dict | None = None
    share: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any], where: str = "data") -> "DataConfig":
        """Validate a ``data:`` block and return its config.

        Args:
            block: The mapping as read from YAML.
            where: Prefix naming the source in error messages, e.g. ``"spaces/x.yaml: data"``.

        Raises:
            DataError: listing every problem found, each with its key.
        """
        from trainable.data.formats import FORMATS  # formats import this module

        if not isinstance(block, Mapping):
            raise DataError(f"{where}: must be a mapping with at least 'format', got {block!r}")
        problems: list[str] = []
        common = {f.name for f in dataclasses.fields(cls)} - {"options"}
        fmt_name = block.get("format")
        fmt = FORMATS.get(fmt_name) if isinstance(fmt_name, str) else None
        if fmt_name is None:
            problems.append(f"{where}.format: missing; known formats: {', '.join(FORMATS)}")
        elif fmt is None:
            problems.append(f"{where}.format: unknown format {fmt_name!r}; known formats: "
                            f"{', '.join(FORMATS)}")

        values: dict[str, Any] = {}
        options = dict(fmt.options) if fmt else {}
        for key, value in block.items():
            if key in common:
                values[key] = value
            elif fmt is not None and key in fmt.options:
                options[key] = value
            elif fmt is not None:
                known = sorted(common | set(fmt.options))
                problems.append(f"{where}.{key}: unknown key for format {fmt.name!r}; "
                                f"known keys: {', '.join(known)}")

        problems += _check_common(values, where)
        if fmt is not None:
            if fmt.needs_path and not values.get("path"):
                problems.append(f"{where}.path: missing; format {fmt.name!r} reads a folder")
            problems += fmt.check_options(options, where)
        if problems:
            raise DataError("; ".join(problems))
        if "image_size" in values and values["image_size"] is not None:
            size = values["image_size"]
            values["image_size"] = (size, size) if isinstance(size, int) else tuple(size)
        if values.get("path") is not None:
            values["path"] = str(values["path"])
        return cls(options=options, **values)

    @property
    def root(self) -> Path:
        """The data set's folder, with ``~`` expanded."""
        return Path(self.path).expanduser()

    def decode_key(self) -> dict[str, Any]:
        """The options that change decoded pixels, for the cache key."""
        return {"format": self.format, "image_size": self.image_size,
                "nonfinite": self.nonfinite, "options": self.options}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_common(values: dict[str, Any], where: str) -> list[str]:
    problems = []
    norm = values.get("normalization", "minmax")
    if norm not in NORMALIZATIONS:
        problems.append(f"{where}.normalization: {norm!r} is not one of {', '.join(NORMALIZATIONS)}")
    fractions = {}
    for key in ("val_fraction", "test_fraction"):
        value = values.get(key, 0.15)
        if not _is_number(value) or not 0 <= value < 1:
            problems.append(f"{where}.{key}: must be a number in [0, 1), got {value!r}")
        else:
            fractions[key] = value
    if len(fractions) == 2 and sum(fractions.values()) >= 1:
        problems.append(f"{where}.val_fraction + test_fraction: must be below 1, got "
                        f"{sum(fractions.values()):g}")
    seed = values.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"{where}.seed: must be an integer, got {seed!r}")
    size = values.get("image_size")
    if size is not None:
        pair = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair)):
            problems.append(f"{where}.image_size: must be a positive integer or [height, width], "
                            f"got {size!r}")
    nonfinite = values.get("nonfinite", "error")
    if nonfinite not in NONFINITE_ACTIONS:
        problems.append(f"{where}.nonfinite: {nonfinite!r} is not one of "
                        f"{', '.join(NONFINITE_ACTIONS)}")
    if not isinstance(values.get("cache", True), bool):
        problems.append(f"{where}.cache: must be true or false, got {values['cache']!r}")
    workers = values.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                or workers < 1):
        problems.append(f"{where}.workers: must be a positive integer, got {workers!r}")
    simulate = values.get("simulate")
    if simulate is not None and not isinstance(simulate, (str, Mapping)):
        problems.append(f"{where}.simulate: must be a simulator name or a mapping, got {simulate!r}")
    share = values.get("share", "auto")
    if share not in SHARING:
        problems.append(f"{where}.share: {share!r} is not one of {', '.join(SHARING)}")
    for key in ("path", "cache_dir"):
        value = values.get(key)
        if value is not None and not isinstance(value, (str, Path)):
            problems.append(f"{where}.{key}: must be a path string, got {value!r}")
    return problems
