"""ASHA's rungs, the one place they are computed: the first after at least :data:`MIN_RUNG_STEPS`
optimizer steps, then every ``reduction_factor`` times as many epochs, as Ray places them."""

from __future__ import annotations

import math

MIN_RUNG_STEPS = 100  # optimizer steps before ASHA's first rung (BENCHMARKS.md, "Where does ASHA's first rung go?")

MAX_PROMOTIONS = 3  # max_t at most grace x reduction_factor^3; more budget buys more trials

MIN_PROMOTIONS = 2  # max_t at least grace x reduction_factor^2: the winner trains well past the rungs

MIN_PROMOTIONS_TRAIN_ON = 1  # ... or ^1 when the best trial trains on after the search (search.train_on)

# And at least this many epochs: a winner stopped short of it loses to the default trained longer
# (BENCHMARKS.md, "Does the search beat its default configuration at equal compute?").
MIN_FULL_EPOCHS = 20


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: full batches only (:func:`trainable.train.batch_slices`)."""
    return max(n_train // batch_size, 1)


def grace_epochs(n_train: int, batch_size: int, max_t: int | None = None, reduction_factor: float = 3,
                 min_steps: int = MIN_RUNG_STEPS) -> int:
    """Epochs before ASHA's first rung: enough for ``min_steps`` optimizer steps, and, given
    ``max_t``, no later than one rung below it (``max_t / reduction_factor``)."""
    grace = math.ceil(min_steps / steps_per_epoch(n_train, batch_size))
    if max_t is not None:
        grace = min(grace, max(1, int(max_t // reduction_factor)))
    return max(1, grace)


def rungs(grace: int, max_t: int, reduction_factor: float) -> list[int]:
    """ASHA's rungs below ``max_t``, as Ray places them: grace x reduction_factor^j."""
    out, rung = [], grace
    while rung < max_t:
        out.append(int(rung))
        rung *= reduction_factor
    return out


def asha_epochs(grace: int, max_t: int, reduction_factor: float) -> float:
    """Expected epochs one trial trains under ASHA: all reach the first rung, a
    1 / reduction_factor^j share goes on past rung j."""
    points = rungs(grace, max_t, reduction_factor) + [max_t]
    return points[0] + sum((b - a) / reduction_factor ** (j + 1) for j, (a, b) in enumerate(zip(points, points[1:])))


def full_epochs(grace: int, eta: float, minimum: int = MIN_FULL_EPOCHS, fewest: int = MIN_PROMOTIONS) -> list[int]:
    """The lengths a full trial may have, longest first: grace x eta^k, k from
    :data:`MAX_PROMOTIONS` down to ``fewest``, none under ``minimum`` (if that leaves none, the
    shortest that reaches it)."""
    out = [int(grace * eta ** k) for k in range(MAX_PROMOTIONS, fewest - 1, -1)]
    out = [e for e in out if e >= minimum]
    k = MAX_PROMOTIONS
    while not out:
        k += 1
        out = [int(grace * eta ** k)] if grace * eta ** k >= minimum else []
    return out
