"""Stratified reproducible splits and the three normalizations."""

import numpy as np
import pytest

from tests.trainable.data.writers import write_fits_csv, write_npy_folders
from trainable.data import apply_normalization, load_dataset
from trainable.data.splits import make_splits

IMBALANCED = np.array([0] * 300 + [1] * 690 + [2] * 60)


def test_splits_are_reproducible_and_seed_dependent():
    a = make_splits(IMBALANCED, None, 0.2, 0.1, seed=7)
    b = make_splits(IMBALANCED, None, 0.2, 0.1, seed=7)
    c = make_splits(IMBALANCED, None, 0.2, 0.1, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["val"], c["val"])


def test_splits_are_stratified_with_the_requested_sizes():
    splits = make_splits(IMBALANCED, None, 0.2, 0.1, seed=0)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [735, 210, 105]
    overall = np.bincount(IMBALANCED) / len(IMBALANCED)
    for name, idx in splits.items():
        share = np.bincount(IMBALANCED[idx], minlength=3) / len(idx)
        assert np.abs(share - overall).max() < 0.01, name
    assert len(np.unique(np.concatenate(list(splits.values())))) == len(IMBALANCED)


def test_zero_fraction_gives_an_empty_split():
    splits = make_splits(IMBALANCED, None, 0.2, 0.0, seed=0)
    assert len(splits["test"]) == 0 and len(splits["train"]) + len(splits["val"]) == 1050


def test_loaded_splits_depend_only_on_the_seed(tmp_path):
    root = write_fits_csv(tmp_path / "b", [1] * 30 + [0] * 13)
    first = load_dataset({"format": "fits_csv", "path": str(root), "seed": 1})
    again = load_dataset({"format": "fits_csv", "path": str(root), "seed": 1})
    other = load_dataset({"format": "fits_csv", "path": str(root), "seed": 2})
    assert all(np.array_equal(first.splits[k], again.splits[k]) for k in first.splits)
    assert not all(np.array_equal(first.splits[k], other.splits[k]) for k in first.splits)
    assert np.array_equal(first.images.numpy(), again.images.numpy())


@pytest.fixture
def scaled_set(tmp_path):
    """Three-channel images whose channels have very different ranges."""
    root = write_npy_folders(tmp_path / "d", {"": {"a": 20, "b": 20}}, shape=(3, 6, 6))
    for i, f in enumerate(sorted(root.rglob("*.npy"))):
        x = np.load(f)
        np.save(f, x * np.array([1, 10, 100], np.float32)[:, None, None] + i)
    return root


def test_minmax_scales_each_image_to_unit_range(scaled_set):
    ds = load_dataset({"format": "npy_folders", "path": str(scaled_set)})
    flat = ds.images.flatten(1)
    assert np.allclose(flat.min(1).values, 0) and np.allclose(flat.max(1).values, 1)
    assert ds.normalization == {"method": "minmax"}


def test_standardize_uses_training_statistics_per_channel(scaled_set):
    raw = load_dataset({"format": "npy_folders", "path": str(scaled_set), "normalization": "none"})
    ds = load_dataset({"format": "npy_folders", "path": str(scaled_set), "normalization": "standardize"})
    train = raw.images.numpy()[raw.splits["train"]].astype(np.float64)
    assert np.allclose(ds.normalization["mean"], train.mean(axis=(0, 2, 3)), rtol=1e-6)
    assert np.allclose(ds.normalization["std"], train.std(axis=(0, 2, 3)), rtol=1e-5)
    standardized = ds.images.numpy()[ds.splits["train"]]
    assert np.allclose(standardized.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(standardized.std(axis=(0, 2, 3)), 1, atol=1e-4)
    # The same record normalizes new images identically (what prediction will use).
    again = raw.images.numpy().copy()
    apply_normalization(again, ds.normalization)
    assert np.allclose(again, ds.images.numpy(), atol=1e-5)


def test_none_keeps_the_stored_values(scaled_set):
    ds = load_dataset({"format": "npy_folders", "path": str(scaled_set), "normalization": "none"})
    i = next(i for i, f in enumerate(ds.files) if f.endswith("/b/3.npy"))
    assert np.array_equal(ds.images[i].numpy(), np.load(scaled_set / "b" / "3.npy"))


def test_asinh_stretches_by_each_channels_noise_then_scales_to_unit_range(scaled_set):
    raw = load_dataset({"format": "npy_folders", "path": str(scaled_set), "normalization": "none"})
    ds = load_dataset({"format": "npy_folders", "path": str(scaled_set), "normalization": "asinh"})
    assert ds.normalization == {"method": "asinh"}
    x = raw.images.numpy().astype(np.float64)
    median = np.median(x, axis=(2, 3), keepdims=True)
    noise = 1.4826 * np.median(np.abs(x - median), axis=(2, 3), keepdims=True)
    expected = np.arcsinh((x - median) / noise)
    low = expected.min(axis=(1, 2, 3), keepdims=True)
    expected = (expected - low) / (expected.max(axis=(1, 2, 3), keepdims=True) - low)
    assert np.allclose(ds.images.numpy(), expected, atol=1e-5)
    again = raw.images.numpy().copy()
    apply_normalization(again, ds.normalization)
    assert np.allclose(again, ds.images.numpy(), atol=1e-6)


def test_asinh_keeps_a_faint_feature_that_minmax_flattens():
    from trainable.data.normalize import asinh_, minmax_

    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (1, 1, 41, 41)).astype(np.float32)
    image[0, 0, 20, 20] = 1000.0  # a bright lens galaxy core
    image[0, 0, 5, :] += 5.0  # a faint arc, five times the noise
    stretched, scaled = image.copy(), image.copy()
    asinh_(stretched)
    minmax_(scaled)
    contrast = lambda im: im[0, 0, 5].mean() - np.median(im)  # noqa: E731
    assert contrast(stretched) > 0.2 and contrast(scaled) < 0.01


def test_an_unknown_normalization_record_is_refused():
    images = np.ones((2, 1, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="unknown normalization 'zscale'"):
        apply_normalization(images, {"method": "zscale"})
    apply_normalization(images, {"method": "none"})
    assert (images == 1).all()
