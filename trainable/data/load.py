"""One entry point from a ``data:`` block to an :class:`ImageDataset`.

list files (format) -> decode, or take from the cache -> labels and splits -> normalize.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from trainable.data import cache
from trainable.data.config import DataConfig
from trainable.data.dataset import ImageDataset
from trainable.data.decode import decode_images, stack_images
from trainable.data.formats import FORMATS, Listing
from trainable.data.normalize import normalize_
from trainable.data.splits import make_splits
from trainable.errors import DataError

log = logging.getLogger(__name__)


def load_dataset(data: DataConfig | Mapping[str, Any], where: str = "data",
                 mapped: bool = False) -> ImageDataset:
    """Load the data set a ``data:`` block describes.

    Args:
        data: A validated :class:`DataConfig`, or the block as read from YAML.
        where: Names the block's source in error messages (e.g. ``"spaces/x.yaml: data"``).
        mapped: Keep the normalized images in the node's cache and memory-map them read-only,
            so every process of a node that loads the set shares one copy (the page cache).
            Sets held in memory by their format (``digits``) and ``cache: false`` load as usual.

    Returns:
        The decoded, split and normalized data set.

    Raises:
        DataError: anything wrong with the block or the files, in one line naming the key or file.
    """
    config = data if isinstance(data, DataConfig) else DataConfig.from_mapping(data, where)
    fmt = FORMATS[config.format]
    root = None
    if fmt.needs_path:
        root = config.root.resolve()
        if not root.exists():
            raise DataError(f"{where}.path: {root} does not exist")
        if not root.is_dir():
            raise DataError(f"{where}.path: {root} is not a folder")
    try:
        listing = fmt.index(root, config.options)
    except OSError as err:  # an unreadable folder, a permission error
        raise DataError(f"{err.filename or root}: {err.strerror or err}") from None
    class_names, labels = _encode_labels(listing)
    splits = make_splits(labels, None if listing.split_of is None else np.asarray(listing.split_of),
                         config.val_fraction, config.test_fraction, config.seed)
    if mapped and listing.images is None and config.cache:
        images, record = _mapped_images(listing, config, root, splits)
    else:
        images = _images(listing, config, root)
        record = normalize_(images, config.normalization, splits["train"])
    with warnings.catch_warnings():  # a memory-mapped set is read-only, and never written to
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(images)
    return ImageDataset(
        images=tensor, labels=torch.from_numpy(labels),
        class_names=class_names, splits=splits,
        files=tuple("+".join(map(str, item)) for item in listing.items),
        metadata=listing.metadata, normalization=record,
        source={"format": config.format, "path": config.path, "layout": listing.layout})


def _encode_labels(listing: Listing) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names (numeric labels in numeric order, others sorted) and integer labels."""
    values = sorted(set(listing.labels), key=lambda v: (isinstance(v, str), v))
    if len(values) < 2:
        raise DataError(f"only one class found ({values[0]!r}); a classifier needs at least two")
    counts = Counter(listing.labels)
    single = [v for v in values if counts[v] == 1]
    if single:
        item = listing.items[listing.labels.index(single[0])][0]
        raise DataError(f"class {str(single[0])!r} has a single image ({item}); each class needs "
                        f"at least two to be split")
    index = {v: i for i, v in enumerate(values)}
    labels = np.fromiter((index[v] for v in listing.labels), dtype=np.int64,
                         count=len(listing.labels))
    return tuple(str(v) for v in values), labels


def _cache_dir(config: DataConfig) -> Path:
    return Path(config.cache_dir).expanduser() if config.cache_dir else cache.default_cache_dir()


def _mapped_images(listing: Listing, config: DataConfig, root: Path | None,
                   splits: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
    """Normalized images memory-mapped from the node's cache, built there on the first load (by
    one process of the node; the others wait for it), and their normalization record."""
    files = [path for item in listing.items for path in item]
    cache_dir = _cache_dir(config)
    # The normalized entry depends on the splits too: standardize measures the training split.
    key = cache.fingerprint(root, files, {**config.decode_key(), "normalized": config.normalization,
                                          "splits": [config.val_fraction, config.test_fraction, config.seed]})
    with cache.lock(cache_dir, key):
        images, record = cache.load(cache_dir, key, mmap=True), cache.load_record(cache_dir, key)
        if images is None or record is None or len(images) != len(listing.items):
            images = _images(listing, config, root)
            record = normalize_(images, config.normalization, splits["train"])
            if cache.store(cache_dir, key, images, record) is None:
                return images, record  # the cache cannot be written: this process keeps its copy
            images = cache.load(cache_dir, key, mmap=True)
    log.info("data: %d normalized images memory-mapped from %s", len(images), cache_dir / f"{key}.npy")
    return images, record


def _images(listing: Listing, config: DataConfig, root: Path | None) -> np.ndarray:
    """Decoded (N, C, H, W) float32 images, from the cache when the files have not changed."""
    if listing.images is not None:
        names = [item[0].name for item in listing.items]
        return stack_images(list(listing.images), names, config.image_size)
    files = [path for item in listing.items for path in item]
    cache_dir = _cache_dir(config)
    key = cache.fingerprint(root, files, config.decode_key()) if config.cache else None
    if key is not None:
        images = cache.load(cache_dir, key)
        if images is not None and len(images) == len(listing.items):
            log.info("data: %d images from the cache %s", len(images), cache_dir / f"{key}.npy")
            return images
    log.info("data: decoding %d files from %s (first load; cached for the next)", len(files), root)
    start = time.perf_counter()
    images = decode_images(listing.items, image_size=config.image_size,
                           expand_grey=listing.expand_grey, hdu=config.options.get("hdu", 0),
                           nonfinite=config.nonfinite, workers=config.workers)
    log.info("data: decoded %d files in %.1f s", len(files), time.perf_counter() - start)
    if key is not None:
        cache.store(cache_dir, key, images)
    return images
