"""Several objectives at once: non-dominated sorting and crowding (MO-ASHA's rungs, the Pareto set),
and the fastest throughput of each architecture (what the scheduler, the searcher and the results read).

The sorting functions take points as an ``(n, k)`` array of objective values and ``modes``
(``max`` or ``min`` per column). Optuna sorts the same way inside its samplers, in private
functions only.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def as_minimised(points, modes: Sequence[str]) -> np.ndarray:
    """``points`` turned so that smaller is better in every column; NaN becomes the worst value."""
    values = np.asarray(points, dtype=float).reshape(len(points), len(modes))
    values = values * np.where(np.asarray(modes) == "max", -1.0, 1.0)
    return np.where(np.isnan(values), np.inf, values)


def front_ranks(points, modes: Sequence[str]) -> np.ndarray:
    """Each point's non-domination rank: 0 for the Pareto front, 1 for the front of the rest, ...
    (Deb et al.'s fast non-dominated sort; rungs and searches hold hundreds of points, not more)."""
    values = as_minimised(points, modes)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=int)
    better_eq = np.all(values[:, None, :] <= values[None, :, :], axis=2)
    strictly = np.any(values[:, None, :] < values[None, :, :], axis=2)
    beats = better_eq & strictly  # beats[i, j]: i dominates j
    dominated_by = beats.sum(axis=0)
    ranks = np.full(n, -1)
    current, rank = np.flatnonzero(dominated_by == 0), 0
    while current.size:
        ranks[current] = rank
        dominated_by = dominated_by - beats[current].sum(axis=0)
        dominated_by[ranks >= 0] = -1
        current, rank = np.flatnonzero(dominated_by == 0), rank + 1
    return ranks


def pareto_mask(points, modes: Sequence[str]) -> np.ndarray:
    """Which points no other point dominates (equal points are all kept)."""
    return front_ranks(points, modes) == 0


def crowding_distance(points, modes: Sequence[str]) -> np.ndarray:
    """NSGA-II's crowding distance of each point within its set: the two ends of every objective
    get infinity, the others the sum over objectives of the normalised gap between their
    neighbours. A larger distance is a point in a sparser part of the front."""
    values = as_minimised(points, modes)
    n, k = values.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for j in range(k):
        order = np.argsort(values[:, j], kind="stable")
        column = values[order, j]
        distance[order[[0, -1]]] = math.inf
        span = column[-1] - column[0]
        if not math.isfinite(span) or span <= 0:
            continue
        distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def pareto_order(points, modes: Sequence[str]) -> np.ndarray:
    """Indices of ``points`` best first: by front, then by crowding distance within the front
    (largest first), then by the first objective."""
    values = as_minimised(points, modes)
    ranks = front_ranks(values, ["min"] * values.shape[1])
    crowding = np.zeros(len(values))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distance(values[members], ["min"] * values.shape[1])
    return np.lexsort((values[:, 0], -crowding, ranks)) if len(values) else np.zeros(0, dtype=int)


# What sets a network's inference cost, besides the search's fixed input size and device.
ARCHITECTURE_KEYS = ("backbone", "cnn_width", "cnn_depth", "throughput_batch", "amp", "channels_last")


def architecture(config: dict) -> tuple:
    """The settings that shape a trial's network and how it runs (:data:`ARCHITECTURE_KEYS`)."""
    from trainable.config import TrainConfig

    defaults = TrainConfig()
    return tuple(config.get(key, getattr(defaults, key)) for key in ARCHITECTURE_KEYS)


class FastestByArchitecture:
    """The fastest ``throughput`` any trial of each architecture measured so far.

    Throughput is a property of the architecture, but each trial measures it while others train
    beside it, so two trials of one network can measure very different throughputs. Taken as
    measured, such noise would rank trials at MO-ASHA's rungs, steer TPE and put trials on the
    Pareto front for a lucky timing. The fastest measurement of an architecture is the least
    disturbed one (:mod:`trainable.cost`), so the scheduler, the searcher and the results all
    read that.
    """

    def __init__(self):
        self.fastest: dict[tuple, float] = {}

    def update(self, config: dict, value: float) -> float:
        """Record a trial's measurement; returns its architecture's fastest so far."""
        key = architecture(config)
        self.fastest[key] = max(value, self.fastest.get(key, value))
        return self.fastest[key]

    def get(self, config: dict) -> float | None:
        return self.fastest.get(architecture(config))
