""""Best so far": the one definition the trial, the searcher, W&B, the results and the figures use.

A trial's best value is the best *finite* value of its metric over the epochs it reported, and
its best epoch the first epoch that reached it; where the epochs that tie report a validation
loss (the trainer passes it), the tying epoch of lowest loss: accuracy on a small validation
split moves in steps of one image and ties often, and the first epoch of a tie is not always
the better model. Epochs that diverged report sentinel values, not measurements, and never
count. NaN is never compared: ``max(nan, 0.9)`` is ``nan`` while ``max(0.9, nan)`` is ``0.9``,
so a plain ``max`` over a NaN depends on the order of its arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

MODES = ("max", "min")
BEST_EPOCH = "best_epoch"  # the result field of a trial's best epoch (1-based)


def best_key(metric: str) -> str:
    """The result field of a trial's best value of ``metric`` so far (``best_val_auc``)."""
    return f"best_{metric}"


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (NaN, infinities, None, text)."""
    if isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def is_better(value: float, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` (None: nothing yet) in ``mode``; ties do not."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return than is None or (value > than if mode == "max" else value < than)


def top(values: Iterable[float | None], mode: str) -> float | None:
    """The best of the known values in ``mode``; None when none is known."""
    known = [v for v in values if v is not None]
    return (max if mode == "max" else min)(known) if known else None


def within(value: float | None, best: float, tolerance: float | None, mode: str) -> bool:
    """Whether ``value`` is within ``tolerance`` (None: 0) of ``best`` in ``mode``: the one "close
    to the best" rule (a standard error, :func:`trainable.metrics.standard_error`, or a
    ``cheapest_within`` distance) that the results, the final stage and the Pareto pick use."""
    if value is None:
        return False
    sign = 1 if mode == "max" else -1
    return sign * (best - value) <= (tolerance or 0.0) + 1e-12


@dataclass
class Best:
    """The best value and epoch of one trial, updated an epoch at a time."""

    mode: str = "max"
    value: float | None = None
    epoch: int | None = None
    loss: float | None = None  # the validation loss at ``epoch``, when the updates gave one

    def update(self, value: Any, epoch: int, diverged: bool = False, loss: Any = None) -> bool:
        """Take epoch ``epoch``'s value (and validation ``loss``, which breaks ties: the lower
        wins); returns whether it is the new best. Non-finite values and diverged epochs are
        ignored."""
        value = None if diverged else finite(value)
        loss = finite(loss)
        if value is None:
            return False
        tie_won = (value == self.value and loss is not None and (self.loss is None or loss < self.loss))
        if not (is_better(value, self.value, self.mode) or tie_won):
            return False
        self.value, self.epoch, self.loss = value, int(epoch), loss
        return True


def best_of(values: Iterable[Any], epochs: Iterable[int] | None = None, mode: str = "max",
            diverged: Iterable[Any] | None = None) -> Best:
    """The best of a whole history: ``values`` per epoch (``epochs`` default 1, 2, ...),
    ``diverged`` flags per epoch (truthy: not a measurement)."""
    values = list(values)
    epochs = list(epochs) if epochs is not None else list(range(1, len(values) + 1))
    flags = list(diverged) if diverged is not None else [False] * len(values)
    best = Best(mode)
    for value, epoch, flag in zip(values, epochs, flags):
        best.update(value, epoch, diverged=_flag(flag))
    return best


def _flag(value: Any) -> bool:
    """A 0/1 flag read from a table: NaN and missing mean unset."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and value != 0
