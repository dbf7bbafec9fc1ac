"""A cache of decoded image arrays, so a set of many small files is decoded once.

An entry's name is ``<set>-<content>.npy``: ``set`` hashes the data set's folder and the decoding
options, ``content`` hashes every file's path, size and modification time, so editing, adding,
removing or renaming a file gives a new entry, and storing it drops the stale entries of the same
set (a large set would otherwise leave a copy of itself behind after every change). Entries are plain ``.npy``
files written atomically (a temporary name, then a rename), so concurrent loaders on one node
never read a half-written entry. The cache lives outside the data set: the user's folders are
never written to. Remove the folder to reclaim its space.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

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


def load(cache_dir: Path, key: str) -> np.ndarray | None:
    """The cached array for ``key``, or None. A damaged entry is dropped and counts as a miss."""
    path = cache_dir / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        log.warning("dropping damaged cache entry %s (%s)", path, err)
        path.unlink(missing_ok=True)
        return None


def store(cache_dir: Path, key: str, images: np.ndarray) -> Path | None:
    """Write ``images`` under ``key``; a cache that cannot be written only costs a warning."""
    path = cache_dir / f"{key}.npy"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".tmp", delete=False) as tmp:
            np.save(tmp, images, allow_pickle=False)
        os.replace(tmp.name, path)
        set_key = key.split("-")[0]
        for stale in cache_dir.glob(f"{set_key}-*.npy"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as err:
        log.warning("could not write the data cache in %s (%s); the next load decodes again",
                    cache_dir, err)
        return None
    return path
