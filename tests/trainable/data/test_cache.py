"""The decoded-array cache: a hit skips decoding, any change to the files invalidates it."""

import logging
import os

import numpy as np
import pytest

from tests.trainable.data.writers import write_npy_folders
from trainable.data import load_dataset


@pytest.fixture
def data(tmp_path):
    root = write_npy_folders(tmp_path / "d", {"train": {"a": 12, "b": 12}, "val": {"a": 3, "b": 3}})
    block = {"format": "npy_folders", "path": str(root), "normalization": "none",
             "cache_dir": str(tmp_path / "cache")}
    return root, block, tmp_path / "cache"


def _load(block, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trainable.data"):
        ds = load_dataset(block)
    hit = any("from the cache" in r.message for r in caplog.records)
    return ds, hit


def test_second_load_is_a_cache_hit_with_identical_data(data, caplog):
    root, block, cache_dir = data
    first, hit_first = _load(block, caplog)
    second, hit_second = _load(block, caplog)
    assert (hit_first, hit_second) == (False, True)
    assert len(list(cache_dir.glob("*.npy"))) == 1
    assert np.array_equal(first.images.numpy(), second.images.numpy())
    assert first.files == second.files and np.array_equal(first.labels, second.labels)


def test_changed_file_invalidates_the_cache(data, caplog):
    root, block, cache_dir = data
    _load(block, caplog)
    target = root / "train" / "a" / "5.npy"
    np.save(target, np.full((1, 12, 12), 7.0, np.float32))
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse clocks
    ds, hit = _load(block, caplog)
    assert not hit
    i = ds.files.index(str(target))
    assert (ds.images[i] == 7).all()
    assert len(list(cache_dir.glob("*.npy"))) == 1  # the stale entry of this set was dropped


def test_added_file_and_decoding_options_change_the_key(data, caplog):
    root, block, cache_dir = data
    _load(block, caplog)
    np.save(root / "train" / "b" / "99.npy", np.zeros((1, 12, 12), np.float32))
    ds, hit = _load(block, caplog)
    assert not hit and len(ds.labels) == 31
    _, hit = _load({**block, "image_size": 8}, caplog)
    assert not hit
    assert len(list(cache_dir.glob("*.npy"))) == 2  # other options: another entry, both kept
    # Normalization and splits are applied after the cache: they reuse its entry.
    _, hit = _load({**block, "normalization": "minmax", "seed": 5}, caplog)
    assert hit


def test_cache_off_writes_nothing_and_damaged_entry_is_redecoded(data, caplog):
    root, block, cache_dir = data
    load_dataset({**block, "cache": False})
    assert not cache_dir.exists()
    first, _ = _load(block, caplog)
    (entry,) = cache_dir.glob("*.npy")
    entry.write_bytes(b"not an array")
    ds, hit = _load(block, caplog)
    assert not hit and np.array_equal(ds.images.numpy(), first.images.numpy())


def test_cache_default_location_comes_from_the_environment(data, caplog, tmp_path, monkeypatch):
    root, block, _ = data
    monkeypatch.setenv("LENS_SEARCH_CACHE", str(tmp_path / "env-cache"))
    block = {k: v for k, v in block.items() if k != "cache_dir"}
    load_dataset(block)
    assert len(list((tmp_path / "env-cache").glob("*.npy"))) == 1
    assert not list(root.rglob("*.tmp"))  # nothing written into the data set
