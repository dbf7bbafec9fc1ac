"""Sizing a search to its time budget: epochs per trial, trials, image size and the share the best
trial trains on (:func:`size_search`), then written into the space (:func:`apply`). The rule is
in ``docs/time-budget.md``; the figures that set its constants in BENCHMARKS.md."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from search.plan.cost import TRIAL_START_S, Cost, image_sizes
from search.plan.rungs import (MIN_FULL_EPOCHS, MIN_PROMOTIONS_TRAIN_ON, MIN_RUNG_STEPS, asha_epochs, full_epochs,
                               grace_epochs, rungs, steps_per_epoch)
from search.space import AUTO, Space, complete_point, largest_batch

MIN_TRIALS = 8  # a search of fewer configurations is hardly a search

MIN_TRIALS_AT_FLOOR = 4  # ... but at data.min_image_size, fewer trials rather than smaller images

SAFETY = 0.85  # of the budget the expected cost may fill

TRAIN_ON = 1 / 3  # of a time budget: the best trial trains on after the search (search.train_on: auto)


@dataclass(frozen=True)
class Sizing:
    """What a search runs with, settled before it starts.

    Attributes:
        epochs: ASHA's ``max_t``, a full trial's epochs.
        grace_period: Epochs before ASHA's first rung.
        num_samples: Trials Ray may start.
        image_size: The side images are resized to, or None for their native size.
        steps: Optimizer steps per epoch.
        expected_trials: With a time budget, the trials expected to start in it.
        epoch_s: With a time budget, the expected seconds of one epoch.
        start_until_s: With a time budget, no trial starts after this many seconds.
        slots: Trials that run at once.
        short_of: Set when the budget is too short for the rule at any image size: the whole
            time budget that would hold it at the smallest size (the share kept for training on
            included).
        alone: The budget is too short for a search and ``num_samples`` was ``auto``: the default
            configuration trains alone until the budget ends, on ``widen`` trials' resources.
        widen: The lone trial's resources, in trials' (the trials one node holds at once).
        short_epochs: With ``short_of``, the full trial's epochs the rule wanted.
        search_s: With a time budget, the seconds the trials run (Ray's time budget).
        train_on_s: With a time budget, the seconds after the trials in which the best trial
            trains on, on ``widen`` trials' resources (:mod:`search.results.train_on`); what the trials
            leave of the budget goes to it too.
        train_on_epochs: The epochs it is expected to train on, at least (at one trial's speed).
        floor: Set (to ``data.min_image_size``) when no size above it held :data:`MIN_TRIALS` and
            the search runs fewer trials at it instead of smaller images.
    """

    epochs: int
    grace_period: int
    num_samples: int
    image_size: int | None
    steps: int
    expected_trials: int | None = None
    epoch_s: float | None = None
    start_until_s: float | None = None
    slots: int = 1
    short_of: float | None = None
    alone: bool = False
    widen: int = 1
    short_epochs: int | None = None
    search_s: float | None = None
    train_on_s: float = 0.0
    train_on_epochs: int = 0
    floor: int | None = None

    def rung_line(self, reduction_factor: float, scheduler: str) -> str:
        if self.alone:
            return (f"trials: one, the default configuration, until the time budget ends ({self.steps} optimizer "
                    f"steps per epoch)")
        if scheduler == "none":
            return f"trials: {self.epochs} epochs each ({self.steps} optimizer steps per epoch), no early stopping"
        marks = ", ".join(map(str, rungs(self.grace_period, self.epochs, reduction_factor))) or "none"
        return (f"rungs: ASHA compares trials at epochs {marks} of {self.epochs}; the first after "
                f"{self.grace_period * self.steps} optimizer steps ({self.steps} per epoch; the rule: at least "
                f"{MIN_RUNG_STEPS}, search.grace_period: auto)")

    def budget_line(self, budget_s: float, cost: Cost, batch_size: int) -> str:
        size = f"{self.image_size} px" if self.image_size else f"native {cost.image_size} px"
        small = f" ({cost.small_step_s:.3f} s at {cost.small_size} px)" if cost.small_step_s is not None else ""
        timed = (f"time budget {budget_s:g} s on {self.slots} concurrent trial(s): a training step of "
                 f"{batch_size} images takes {cost.step_s:.3f} s at {cost.image_size} px{small}, so an epoch about "
                 f"{self.epoch_s:.1f} s at {size}")
        if self.alone:
            return (f"{timed}; too short for a search, so the default configuration trains alone at {size} on "
                    f"{self.widen} trial(s)' resources until the budget ends")
        line = (f"{timed}; about {self.expected_trials} trials of at most {self.epochs} epochs, new ones until "
                f"{self.start_until_s:.0f} s")
        if self.floor:
            line += (f" (fewer than the {MIN_TRIALS} a search wants, rather than images under "
                     f"data.min_image_size, {self.floor} px)")
        if self.train_on_s:
            line += (f"; then the best trial trains on for the last {self.train_on_s:.0f} s on {self.widen} "
                     f"trial(s)' resources (search.train_on)")
        return line

    def short_line(self) -> str | None:
        if self.short_of is None:
            return None
        rule = (f"a search of {MIN_TRIALS} trials of at most {self.short_epochs} epochs needs a time budget of "
                f"about {self.short_of:.0f} s")
        if self.alone:
            return (f"warning: the time budget is too short for a search ({rule}); with less, a search loses to its "
                    f"default configuration trained for the whole budget, which is what runs (raise "
                    f"search.time_budget for a search, or set search.num_samples to search anyway)")
        return (f"warning: the time budget is too short for a search ({rule}); with fewer trials it is unlikely to "
                f"beat its default configuration trained for the whole budget (raise search.time_budget, or "
                f"leave search.num_samples auto to train the default alone)")


def train_on_share(space: Space) -> float:
    """The share of the time budget kept for the best trial to train on: ``search.train_on``,
    :data:`TRAIN_ON` when ``auto``; none without a time budget.

    ``auto`` keeps none in a multi-objective search (``objectives:``): the trial that trained on
    went past every other trial's ``max_t`` and, cheap or not, dominated the whole front (the
    quick start over resnet10t and simple_cnn: a front of one, a simple_cnn trained 213 epochs
    against 15; BENCHMARKS.md, "Accuracy against inference cost"). The budget goes to the trials."""
    share = space.search.train_on
    if not space.search.time_budget:
        return 0.0
    if share == AUTO:
        return 0.0 if space.objectives else TRAIN_ON
    return float(share)


def size_search(space: Space, n_train: int, n_val: int, native: int, slots: int,
                cost: Cost | None, budget_s: float | None, node_slots: int | None = None) -> Sizing:
    """Settle epochs, grace period, trials and image size (see the module's rule).

    Without a time budget (``cost`` None) only the grace period can be ``auto``; the file's
    epochs and trials stand. ``node_slots``: the trials one node holds at once (default
    ``slots``), what a lone default configuration (or the best trial training on) may take."""
    settings = space.search
    batch = largest_batch(space)
    steps = steps_per_epoch(n_train, batch)
    eta = settings.reduction_factor
    auto = space.auto
    fixed_epochs = None if "epochs" in auto else space.epochs
    fixed_grace = None if "grace_period" in auto else settings.grace_period
    if cost is None:
        grace = fixed_grace or grace_epochs(n_train, batch, fixed_epochs, eta)
        return Sizing(fixed_epochs, grace, settings.num_samples, None, steps, slots=slots)
    min_trials = MIN_TRIALS if "num_samples" in auto else settings.num_samples
    widen = max(1, min(node_slots or slots, slots))
    grace = fixed_grace or grace_epochs(n_train, batch, fixed_epochs, eta)
    floor = space.min_image_size  # None unless data.image_size is auto (search.space)
    sizes = image_sizes(native, "image_size" in auto, floor)

    def plan(size, epochs, search_s, on_s):
        capacity = search_s * slots * SAFETY
        epoch_s = cost.epoch_s(n_train, n_val, batch, size)
        run = epochs if settings.scheduler == "none" else asha_epochs(min(grace, epochs), epochs, eta)
        trial_s = epoch_s * run + TRIAL_START_S
        full_s = epoch_s * epochs + TRIAL_START_S
        # Asynchronous ASHA promotes a trial that is alone at its rung: the first runs to max_t.
        trials = 0 if full_s > capacity else 1 + int((capacity - full_s) // trial_s)
        # The best trial's epochs after the search, at one trial's speed (it has more): a bound below.
        on = int(on_s * SAFETY / epoch_s) if on_s else 0
        return size, epochs, trials, epoch_s, trial_s, full_s, on

    # The largest size, then the longest trials, where MIN_TRIALS fit, a full trial ends in the
    # search's share of the budget, and the best trial's epochs with those it trains on after the
    # search reach MIN_FULL_EPOCHS.
    share = train_on_share(space)
    search_s, on_s = budget_s * (1 - share), budget_s * share
    options = [fixed_epochs] if fixed_epochs else sorted(
        set(full_epochs(grace, eta) + (full_epochs(grace, eta, 1, MIN_PROMOTIONS_TRAIN_ON) if share else [])),
        reverse=True)
    plans = [plan(size, epochs, search_s, on_s) for size in sizes for epochs in options]
    smallest = [p for p in plans if p[0] == sizes[-1]]  # what a too-short budget's warning prices

    def holds(p, fewest):
        return p[2] >= fewest and p[5] <= search_s and (fixed_epochs or p[1] + p[6] >= MIN_FULL_EPOCHS)

    fits = [p for p in plans if holds(p, min_trials)]
    at_floor = False
    if not fits and floor is not None and "num_samples" in auto:
        # Below data.min_image_size the set loses what tells its classes apart: fewer trials at
        # the floor rather than smaller images (BENCHMARKS.md, "The smallest image size").
        fits = [p for p in plans if p[0] == sizes[-1] and holds(p, MIN_TRIALS_AT_FLOOR)]
        at_floor = bool(fits)
    if fits:
        size, epochs, trials, epoch_s, _, _, on = fits[0]
        grace = min(grace, epochs)
        # auto: a cap Ray needs; the end of the budget stops the search (start_until_s) first.
        num_samples = max(10 * trials, 50) if "num_samples" in auto else settings.num_samples
        return Sizing(epochs, grace, num_samples, size, steps, trials, epoch_s,
                      max(search_s - epoch_s * grace - TRIAL_START_S, 0.0), slots,
                      search_s=search_s, train_on_s=on_s, train_on_epochs=on, widen=widen,
                      floor=floor if at_floor else None)
    # Too short at every size: the smallest, longest trials that end in time (no training on).
    options = [fixed_epochs] if fixed_epochs else full_epochs(grace, eta)
    plans = [plan(size, epochs, budget_s, 0.0) for size in sizes for epochs in options]
    last = [p for p in plans if p[0] == sizes[-1]]
    size, epochs, trials, epoch_s, trial_s, full_s, _ = next((p for p in last if p[5] <= budget_s), last[-1])

    def needed(p):
        """The whole budget that holds plan ``p``'s search as ``holds`` asks: its trials and its full
        trial in the trials' share, and the epochs the best trial trains on in the rest."""
        _, full, _, each_s, one_s, whole_s, _ = p
        trials_s = max((whole_s + (min_trials - 1) * one_s) / (slots * SAFETY), whole_s)
        if fixed_epochs or full >= MIN_FULL_EPOCHS:
            return trials_s / (1 - share)
        # Shorter full trials are options only with a share (full_epochs' minimum otherwise).
        return max(trials_s / (1 - share), (MIN_FULL_EPOCHS - full) * each_s / (share * SAFETY))

    cheapest = min(smallest, key=needed)
    # What the warning names: the budget a search needs at the smallest size (training on included).
    short_of, short_epochs = needed(cheapest), cheapest[1]
    if "num_samples" not in auto:  # the file asked for a search: it gets one, and the warning
        return Sizing(epochs, min(grace, epochs), settings.num_samples, size, steps, max(trials, 1), epoch_s,
                      max(budget_s - epoch_s * min(grace, epochs) - TRIAL_START_S, 0.0), slots, short_of,
                      short_epochs=short_epochs, search_s=budget_s)
    # The default configuration alone on a node's trials' resources, at the largest size where it
    # trains MIN_FULL_EPOCHS in the budget (else the smallest); Ray's time budget ends it.
    alone_capacity = budget_s * widen * SAFETY - TRIAL_START_S
    size = next((s for s in sizes if alone_capacity / cost.epoch_s(n_train, n_val, batch, s) >= MIN_FULL_EPOCHS),
                sizes[-1])
    epoch_s = cost.epoch_s(n_train, n_val, batch, size)
    epochs = fixed_epochs or max(1, math.ceil(2 * alone_capacity / epoch_s))  # a bound: the budget ends it
    return Sizing(epochs, epochs, 1, size, steps, 1, epoch_s, budget_s, 1, short_of, alone=True, widen=widen,
                  short_epochs=short_epochs, search_s=budget_s)


def apply(space: Space, sizing: Sizing) -> Space:
    """The space with its ``auto`` values replaced by ``sizing``'s, in the checked fields and in
    the resolved file (``raw``, what the results folder's ``space.yaml`` keeps)."""
    raw = dict(space.raw)
    raw["trial"] = {**(raw.get("trial") or {}), "epochs": sizing.epochs}
    raw["search"] = {**(raw.get("search") or {}), "grace_period": sizing.grace_period,
                     "num_samples": sizing.num_samples}
    train_on = space.search.train_on
    if space.search.time_budget:  # the share the sizing kept (none when the budget held no search)
        train_on = round(sizing.train_on_s / (sizing.search_s + sizing.train_on_s), 4) if sizing.search_s else 0.0
        raw["search"]["train_on"] = train_on
    data = space.data
    if "image_size" in space.auto:
        raw["data"] = {**(raw.get("data") or {}), "image_size": sizing.image_size}
        size = None if sizing.image_size is None else (sizing.image_size, sizing.image_size)
        data = dataclasses.replace(space.data, image_size=size)
    search = dataclasses.replace(space.search, grace_period=sizing.grace_period, num_samples=sizing.num_samples,
                                 train_on=train_on)
    resources = space.resources
    if sizing.alone:  # the default configuration, on a node's trials' resources
        start = complete_point(space, dict(space.search.start_from[0]) if space.search.start_from else {})
        search = dataclasses.replace(search, start_from=(start,))
        resources = {k: v * sizing.widen for k, v in space.resources.items()}
        raw["trial"]["resources"] = resources
        raw["search"]["start_from"] = [start]
    return dataclasses.replace(space, trial={**space.trial, "epochs": sizing.epochs}, resources=resources,
                               search=search, data=data, auto=frozenset(), raw=raw)
