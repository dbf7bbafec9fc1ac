"""Sampling strategies for imbalanced classes, chosen by name from :data:`SAMPLERS`.

A strategy decides which positions of the training split are trained on, and in which order. It
applies to the training split only: validation and test splits are always read whole.

Every epoch is ``len(train)`` samples, whatever the strategy: strategies change which samples,
not how many. Otherwise an ``oversample`` epoch of a 2.3:1 set is 2.3 times an ``undersample``
one, and ASHA's rungs (counted in epochs) and TPE's ranking of stopped trials would compare
unequal amounts of training. A strategy draws *passes* (oversample: every class brought up to
the majority count; undersample: every class cut to the minority count); the passes form one
endless stream that is cut into epochs of ``len(train)`` samples, so over a run each strategy
trains on exactly the mix it promises.

All randomness of pass ``p`` comes from ``np.random.default_rng([seed, p])``, so an epoch's
content depends on ``(seed, epoch)`` alone and a run resumed at epoch ``e`` trains on exactly what
an uninterrupted run would have. For ``none`` and ``weighted`` a pass is an epoch, as before.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from trainable.errors import UserError

__all__ = ["SAMPLERS", "epoch_indices", "pass_indices"]


def _class_positions(labels: np.ndarray) -> list[np.ndarray]:
    """Positions of each class present in ``labels``, one array per class, in label order."""
    classes, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(classes))
    return np.split(order, np.cumsum(counts)[:-1])


def all_shuffled(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every position once, in random order: the plain epoch."""
    return rng.permutation(len(labels))


def oversample_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every class brought up to the majority count, then shuffled.

    A minority class is repeated whole as many times as fits and topped up with positions drawn
    without replacement, so each of its samples appears either ``k`` or ``k + 1`` times rather
    than at the whim of independent draws.
    """
    per_class = _class_positions(labels)
    target = max(len(positions) for positions in per_class)
    parts = []
    for positions in per_class:
        repeats, remainder = divmod(target, len(positions))
        parts.append(np.tile(positions, repeats))
        parts.append(rng.choice(positions, size=remainder, replace=False))
    return rng.permutation(np.concatenate(parts))


def undersample_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every class cut down to the minority count, a fresh random subset each epoch; shuffled."""
    per_class = _class_positions(labels)
    target = min(len(positions) for positions in per_class)
    parts = [rng.choice(positions, size=target, replace=False) for positions in per_class]
    return rng.permutation(np.concatenate(parts))


def weighted_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``len(labels)`` draws with replacement, each class equally likely (torch's sampler).

    Each sample weighs ``1 / count(its class)``; the sampler's generator is seeded from ``rng``.
    """
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    weights = torch.as_tensor(1.0 / counts[inverse], dtype=torch.float64)
    generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    sampler = WeightedRandomSampler(weights, num_samples=len(labels), replacement=True,
                                    generator=generator)
    return np.fromiter(iter(sampler), dtype=np.int64, count=len(labels))


SAMPLERS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "none": all_shuffled,
    "oversample": oversample_indices,
    "undersample": undersample_indices,
    "weighted": weighted_indices,
}
"""Strategy name -> ``f(labels, rng) -> positions``.

``labels`` is the 1-D integer array of the training split's class indices (non-empty), ``rng`` the
pass's generator and the only source of randomness; ``f`` returns the int64 positions into
``labels`` that make up one pass, already shuffled, always of the same length for the same
``labels``. Call through :func:`epoch_indices`, which cuts the passes into equal epochs.
"""


def _check(name: str, labels: np.ndarray) -> np.ndarray:
    if name not in SAMPLERS:
        raise UserError(f"sampling {name!r} is unknown; known: {', '.join(SAMPLERS)}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        # A caller passing the wrong array is a bug in this project, not bad user input.
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) == 0:
        raise UserError(f"sampling {name!r}: the training split is empty")
    return labels


def pass_indices(name: str, labels: np.ndarray, seed: int, index: int) -> np.ndarray:
    """Positions of pass ``index`` of strategy ``name`` (see the module docstring)."""
    labels = _check(name, labels)
    return SAMPLERS[name](labels, np.random.default_rng([seed, index])).astype(np.int64, copy=False)


def epoch_indices(name: str, labels: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Positions into the training split that make up epoch ``epoch``, in training order.

    The epoch is samples ``[epoch * n, (epoch + 1) * n)`` of the strategy's stream of passes,
    ``n = len(labels)``: every strategy trains on ``n`` samples an epoch.

    Args:
        name: A key of :data:`SAMPLERS`.
        labels: Class index of each training sample, 1-D integer array. A class absent from
            ``labels`` is absent from the epoch too; it is not an error.
        seed: The run's seed (non-negative).
        epoch: The epoch number (non-negative); with ``seed`` it fixes the epoch's content.

    Returns:
        An int64 array of ``len(labels)`` positions into ``labels``.

    Raises:
        UserError: Unknown strategy name, or an empty training split.
    """
    labels = _check(name, labels)
    n = len(labels)
    first = pass_indices(name, labels, seed, 0)
    pass_size = len(first)  # the same for every pass of a strategy on these labels
    start = epoch * n
    index, offset = divmod(start, pass_size)
    parts, drawn = [], 0
    while drawn < offset + n:
        part = first if index == 0 else pass_indices(name, labels, seed, index)
        parts.append(part)
        drawn += len(part)
        index += 1
    return np.concatenate(parts)[offset:offset + n]
