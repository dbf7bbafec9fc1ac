"""Every sampling strategy gives valid, reproducible epochs with the class balance it promises."""

import numpy as np
import pytest

from trainable.errors import UserError
from trainable.sampling import SAMPLERS, epoch_indices, pass_indices

RATIO_2_3 = np.array([0] * 230 + [1] * 100)  # 2.3 : 1, not a whole multiple
THREE_CLASS = np.array([2] * 160 + [0] * 80 + [1] * 16)  # 10 : 5 : 1
ALL_LABELS = [RATIO_2_3, THREE_CLASS]


def _shuffled(labels, seed=7):
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("labels", ALL_LABELS, ids=["2.3:1", "10:5:1"])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_indices_valid_and_sized(name, labels):
    labels = _shuffled(labels)
    indices = epoch_indices(name, labels, seed=3, epoch=0)
    assert indices.dtype == np.int64 and indices.ndim == 1
    assert indices.min() >= 0 and indices.max() < len(labels)
    assert len(indices) == len(labels)  # every strategy: one epoch is len(train) samples
    assert set(np.unique(labels[indices])) == set(np.unique(labels))


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_same_seed_and_epoch_reproduce(name):
    labels = _shuffled(THREE_CLASS)
    first = epoch_indices(name, labels, seed=11, epoch=4)
    # Drawing other epochs in between must not matter: a resumed run sees the same epoch 4.
    epoch_indices(name, labels, seed=11, epoch=3)
    np.testing.assert_array_equal(epoch_indices(name, labels, seed=11, epoch=4), first)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_epochs_and_seeds_differ(name):
    labels = _shuffled(THREE_CLASS)
    base = epoch_indices(name, labels, seed=11, epoch=4)
    assert not np.array_equal(epoch_indices(name, labels, seed=11, epoch=5), base)
    assert not np.array_equal(epoch_indices(name, labels, seed=12, epoch=4), base)


def test_none_is_a_permutation():
    labels = _shuffled(RATIO_2_3)
    indices = epoch_indices("none", labels, seed=0, epoch=0)
    np.testing.assert_array_equal(np.sort(indices), np.arange(len(labels)))
    assert not np.array_equal(indices, np.arange(len(labels)))


@pytest.mark.parametrize("labels", ALL_LABELS, ids=["2.3:1", "10:5:1"])
def test_oversample_equal_counts(labels):
    labels = _shuffled(labels)
    indices = pass_indices("oversample", labels, seed=1, index=2)
    classes, counts = np.unique(labels, return_counts=True)
    _, sampled = np.unique(labels[indices], return_counts=True)
    assert (sampled == counts.max()).all()
    # Every sample of every class appears; a minority sample appears k or k + 1 times.
    uses = np.bincount(indices, minlength=len(labels))
    for cls, count in zip(classes, counts):
        repeats = counts.max() // count
        assert set(np.unique(uses[labels == cls])) <= {repeats, repeats + 1}
        assert uses[labels == cls].min() == repeats
    # Shuffled, not grouped by class.
    assert (np.diff(labels[indices]) != 0).sum() > len(classes)


@pytest.mark.parametrize("labels", ALL_LABELS, ids=["2.3:1", "10:5:1"])
def test_undersample_equal_counts(labels):
    labels = _shuffled(labels)
    indices = pass_indices("undersample", labels, seed=1, index=2)
    _, counts = np.unique(labels, return_counts=True)
    _, sampled = np.unique(labels[indices], return_counts=True)
    assert (sampled == counts.min()).all()
    assert len(np.unique(indices)) == len(indices)  # no sample twice
    # A fresh subset each epoch, not a fixed one.
    other = pass_indices("undersample", labels, seed=1, index=3)
    assert set(indices) != set(other)


def test_weighted_equal_shares():
    labels = _shuffled(np.array([0] * 3500 + [1] * 1000 + [2] * 500))
    indices = epoch_indices("weighted", labels, seed=5, epoch=0)
    assert len(indices) == len(labels)
    shares = np.bincount(labels[indices], minlength=3) / len(indices)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.05)
    assert len(np.unique(indices)) < len(indices)  # drawn with replacement


def test_absent_class_is_absent():
    labels = _shuffled(np.array([0] * 30 + [2] * 10))  # class 1 absent
    for name in SAMPLERS:
        assert set(np.unique(labels[epoch_indices(name, labels, seed=0, epoch=0)])) == {0, 2}
    assert len(pass_indices("oversample", labels, seed=0, index=0)) == 60
    assert len(pass_indices("undersample", labels, seed=0, index=0)) == 20


def test_unknown_name():
    with pytest.raises(UserError, match=r"sampling 'xyz' is unknown; known: none, oversample, "
                                        r"undersample, weighted"):
        epoch_indices("xyz", RATIO_2_3, seed=0, epoch=0)
    with pytest.raises(UserError, match="sampling 'xyz' is unknown"):
        pass_indices("xyz", RATIO_2_3, seed=0, index=0)


@pytest.mark.parametrize("labels", ALL_LABELS, ids=["2.3:1", "10:5:1"])
def test_every_strategy_trains_the_same_amount_an_epoch(labels):
    """ASHA's rungs and TPE compare trials by epochs: an epoch must be the same training for all."""
    labels = _shuffled(labels)
    sizes = {name: [len(epoch_indices(name, labels, seed=2, epoch=e)) for e in range(4)] for name in SAMPLERS}
    assert all(s == [len(labels)] * 4 for s in sizes.values()), sizes


@pytest.mark.parametrize("name", ["oversample", "undersample"])
@pytest.mark.parametrize("labels", ALL_LABELS, ids=["2.3:1", "10:5:1"])
def test_epochs_cut_the_stream_of_passes(name, labels):
    """Consecutive epochs are consecutive pieces of the strategy's passes: over a run, each
    strategy trains on exactly the class mix it promises, and every epoch is nearly balanced."""
    labels = _shuffled(labels)
    epochs = [epoch_indices(name, labels, seed=4, epoch=e) for e in range(6)]
    stream = np.concatenate(epochs)
    passes = np.concatenate([pass_indices(name, labels, seed=4, index=p) for p in range(40)])
    np.testing.assert_array_equal(stream, passes[:len(stream)])
    classes = np.unique(labels)
    for epoch in epochs:
        shares = np.bincount(labels[epoch], minlength=classes.max() + 1)[classes] / len(epoch)
        np.testing.assert_allclose(shares, 1 / len(classes), atol=0.1)
