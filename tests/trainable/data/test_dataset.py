"""The in-memory data set: split access, and zero-copy pickling as Ray's object store does it."""

import pickle

import numpy as np

from trainable.data import load_dataset


def test_split_returns_the_indexed_rows():
    ds = load_dataset({"format": "digits"})
    x, y = ds.split("val")
    assert x.shape == (len(ds.splits["val"]), 1, 8, 8)
    assert np.array_equal(y.numpy(), ds.labels.numpy()[ds.splits["val"]])
    assert sum(ds.class_counts("val").values()) == len(y)


def test_pickle_protocol_5_shares_the_pixels_instead_of_copying():
    ds = load_dataset({"format": "digits", "normalization": "standardize"})
    buffers = []
    payload = pickle.dumps(ds, protocol=5, buffer_callback=buffers.append)
    assert len(payload) < ds.images.numel()  # the pixels went out of band
    loaded = pickle.loads(payload, buffers=buffers)
    assert np.shares_memory(loaded.images.numpy(), ds.images.numpy())
    assert loaded.class_names == ds.class_names and loaded.normalization == ds.normalization
    assert all(np.array_equal(loaded.splits[k], ds.splits[k]) for k in ds.splits)


def test_read_only_buffers_load_without_copy_or_warning(recwarn):
    ds = load_dataset({"format": "digits"})
    buffers = []
    payload = pickle.dumps(ds, protocol=5, buffer_callback=buffers.append)
    read_only = [memoryview(b.raw()).toreadonly() for b in buffers]  # as the object store hands them out
    loaded = pickle.loads(payload, buffers=read_only)
    assert np.shares_memory(loaded.images.numpy(), ds.images.numpy())
    assert not [w for w in recwarn if "not writable" in str(w.message)]
    x, _ = loaded.split("train")  # indexing copies: training never writes shared memory
    assert not np.shares_memory(x.numpy(), ds.images.numpy())
