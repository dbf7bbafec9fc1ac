"""One definition of "best so far", NaN-safe and order-independent."""

import itertools
import math

import pytest

from trainable.best import Best, best_of, finite, is_better

NAN = float("nan")


def test_nan_never_wins_whatever_the_order():
    values = [0.7, NAN, 0.9, math.inf, 0.8]
    for order in itertools.permutations(range(len(values))):
        best = best_of([values[i] for i in order], [i + 1 for i in order], "max")
        assert best.value == 0.9 and best.epoch == 3


def test_diverged_epochs_never_count_and_min_mode():
    best = best_of([0.5, 0.0, 0.3], mode="min", diverged=[0, 1, "nan"])
    assert (best.value, best.epoch) == (0.3, 3)
    assert best_of([0.9, 1.0], diverged=[0, 1]).value == 0.9  # the sentinel of a diverged epoch
    assert best_of([NAN, None, "x"]).value is None


def test_ties_keep_the_first_epoch_unless_a_later_one_has_a_lower_validation_loss():
    best = Best("max")
    assert best.update(0.8, 1) and not best.update(0.8, 2) and not best.update(NAN, 3)
    assert (best.value, best.epoch) == (0.8, 1)
    tied = Best("max")
    assert tied.update(0.8, 1, loss=0.5) and not tied.update(0.8, 2, loss=0.6)
    assert tied.update(0.8, 3, loss=0.4) and (tied.value, tied.epoch, tied.loss) == (0.8, 3, 0.4)
    assert not tied.update(0.8, 4, loss=NAN) and not tied.update(0.7, 5, loss=0.1)
    assert tied.update(0.9, 6) and (tied.epoch, tied.loss) == (6, None)


def test_finite_and_is_better():
    assert finite(True) is None and finite("0.5") == 0.5 and finite(-math.inf) is None
    assert is_better(0.1, None, "min") and not is_better(0.2, 0.1, "min")
    with pytest.raises(ValueError):
        is_better(1.0, 0.0, "up")
