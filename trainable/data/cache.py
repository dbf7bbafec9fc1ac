"""A cache of decoded image arrays, so a set of many small files is decoded once.

An entry's name is ``<set>-<content>.npy``: ``set`` hashes the data set's folder and the decoding
options, ``content`` hashes every file's path, size and modification time, so editing, adding,
removing or renaming a file gives a new entry, and storing it drops the stale entries of the same
set (a large set would otherwise leave a copy of itself behind after every change). Entries are plain ``.npy``
files written atomically (a temporary name, then a rename), so concurrent loaders on one node
never read a half-written entry. The cache lives outside the data set: the user's folders are
never written to. Remove the folder to reclaim its space.

Besides decoded arrays, the cache holds normalized ones for sets that trials read on each node
(``data.share: path``): those are memory-mapped (:func:`load` with ``mmap=True``), so the trials
of one node share one copy through the page cache, with the normalization record beside them
(``<key>.json``). :func:`lock` makes the trials of a node that start together build an entry once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "LENS_SEARCH_CACHE"
_VERSION = 1  # bump when the decoded layout changes


def default_cache_dir() -> Path:
    """``$LENS_SEARCH_CACHE``, else ``$XDG_CACHE_HOME/lens-search``, else ``~/.cache/lens-search``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lens-search"


def fingerprint(root: Path | None, files: Iterable[Path], options: dict[str, Any]) -> str:
    """``<set>-<content>``: hashes of (folder, options) and of each file's path, size and mtime."""
    identity = json.dumps({"v": _VERSION, "root": str(root), **options}, sort_keys=True, default=str)
    set_key = hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()
    digest = hashlib.blake2b(digest_size=16)
    for path in files:
        stat = os.stat(path)
        digest.update(f"\n{path}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return f"{set_key}-{digest.hexdigest()}"


def load(cache_dir: Path, key: str, mmap: bool = False) -> np.ndarray | None:
    """The cached array for ``key`` (read-only and memory-mapped with ``mmap``), or None.
    A damaged entry is dropped and counts as a miss."""
    path = cache_dir / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as err:
        log.warning("dropping damaged cache entry %s (%s)", path, err)
        path.unlink(missing_ok=True)
        return None


def load_record(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """The record stored beside entry ``key``, or None."""
    try:
        return json.loads((cache_dir / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def lock(cache_dir: Path, key: str) -> Iterator[None]:
    """Hold an exclusive lock on entry ``key`` (other processes of the node wait for it)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def store(cache_dir: Path, key: str, images: np.ndarray, record: dict[str, Any] | None = None) -> Path | None:
    """Write ``images`` (and ``record`` beside them) under ``key``; a cache that cannot be written
    only costs a warning."""
    path = cache_dir / f"{key}.npy"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if record is not None:  # first: an entry is complete once its array is in place
            (cache_dir / f"{key}.json").write_text(json.dumps(record))
        with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".tmp", delete=False) as tmp:
            np.save(tmp, images, allow_pickle=False)
        os.replace(tmp.name, path)
        set_key = key.split("-")[0]
        for stale in cache_dir.glob(f"{set_key}-*"):
            if stale.stem != key and stale.suffix in (".npy", ".json", ".lock"):
                stale.unlink(missing_ok=True)
    except OSError as err:
        log.warning("could not write the data cache in %s (%s); the next load decodes again",
                    cache_dir, err)
        return None
    return path
