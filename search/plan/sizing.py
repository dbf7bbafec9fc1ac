"""Sizing a search to its time budget: epochs per trial, trials, image size and the share the best
trial trains on (:func:`size_search`), then written into the space (:func:`apply`). The rule is
in ``docs/time-budget.md``; the figures that set its constants in BENCHMARKS.md."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

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

    ``auto`` keeps none in a multi-objective search (``objectives:``): the trial that trains on
    goes past every other trial's ``max_t`` and, cheap or not, dominates the whole front
    (BENCHMARKS.md, "Does a two-objective search find an accuracy-cost front?"). The budget goes
    to the trials."""
    share = space.search.train_on
    if not space.search.time_budget:
        return 0.0
    if share == AUTO:
        return 0.0 if space.objectives else TRAIN_ON
    return float(share)


class Plan(NamedTuple):
    """One way to spend a budget: trials of ``epochs`` at image ``size``."""

    size: int | None
    epochs: int
    trials: int  # that fit in the trials' share
    epoch_s: float  # one epoch of one trial
    trial_s: float  # a trial ASHA stops at its rungs, on average
    full_s: float  # a trial that runs all its epochs
    train_on_epochs: int  # the best trial's epochs after the search, a bound below


@dataclass(frozen=True)
class Pricing:
    """What every plan of one search is priced with."""

    cost: Cost
    n_train: int
    n_val: int
    batch: int
    grace: int
    eta: int
    slots: int
    asha: bool  # the scheduler stops trials at rungs

    def plan(self, size, epochs: int, search_s: float, on_s: float) -> Plan:
        capacity = search_s * self.slots * SAFETY
        epoch_s = self.cost.epoch_s(self.n_train, self.n_val, self.batch, size)
        run = asha_epochs(min(self.grace, epochs), epochs, self.eta) if self.asha else epochs
        trial_s = epoch_s * run + TRIAL_START_S
        full_s = epoch_s * epochs + TRIAL_START_S
        # Asynchronous ASHA promotes a trial that is alone at its rung: the first runs to max_t.
        trials = 0 if full_s > capacity else 1 + int((capacity - full_s) // trial_s)
        on = int(on_s * SAFETY / epoch_s) if on_s else 0
        return Plan(size, epochs, trials, epoch_s, trial_s, full_s, on)


def size_search(space: Space, n_train: int, n_val: int, native: int, slots: int,
                cost: Cost | None, budget_s: float | None, node_slots: int | None = None) -> Sizing:
    """Settle epochs, grace period, trials and image size (``docs/time-budget.md``).

    Without a time budget (``cost`` None) only the grace period can be ``auto``; the file's
    epochs and trials stand. ``node_slots``: the trials one node holds at once (default
    ``slots``), what a lone default configuration (or the best trial training on) may take."""
    settings, auto = space.search, space.auto
    batch = largest_batch(space)
    steps = steps_per_epoch(n_train, batch)
    fixed_epochs = None if "epochs" in auto else space.epochs
    grace = (None if "grace_period" in auto else settings.grace_period) or grace_epochs(
        n_train, batch, fixed_epochs, settings.reduction_factor)
    if cost is None:
        return Sizing(fixed_epochs, grace, settings.num_samples, None, steps, slots=slots)
    pricing = Pricing(cost, n_train, n_val, batch, grace, settings.reduction_factor, slots,
                      settings.scheduler != "none")
    widen = max(1, min(node_slots or slots, slots))
    sizes = image_sizes(native, "image_size" in auto, space.min_image_size)
    share = train_on_share(space)
    found = fitting_plan(space, pricing, sizes, budget_s, share)
    if found is not None:
        plan, at_floor = found
        search_s = budget_s * (1 - share)
        # auto: a cap Ray needs; the end of the budget stops the search (start_until_s) first.
        num_samples = max(10 * plan.trials, 50) if "num_samples" in auto else settings.num_samples
        grace = min(grace, plan.epochs)
        return Sizing(plan.epochs, grace, num_samples, plan.size, steps, plan.trials, plan.epoch_s,
                      max(search_s - plan.epoch_s * grace - TRIAL_START_S, 0.0), slots,
                      search_s=search_s, train_on_s=budget_s * share, train_on_epochs=plan.train_on_epochs,
                      widen=widen, floor=space.min_image_size if at_floor else None)
    return too_short(space, pricing, sizes, budget_s, share, steps, widen)


def epoch_options(space: Space, grace: int, eta: int, share: float) -> list[int]:
    """The full-trial epochs to try, longest first: the file's, or ASHA's rung-aligned ones (and
    with a share to train on, shorter ones that need fewer promotions)."""
    if "epochs" not in space.auto:
        return [space.epochs]
    return sorted(set(full_epochs(grace, eta) + (full_epochs(grace, eta, 1, MIN_PROMOTIONS_TRAIN_ON) if share else [])),
                  reverse=True)


def fitting_plan(space: Space, pricing: Pricing, sizes: list, budget_s: float,
                 share: float) -> tuple[Plan, bool] | None:
    """The largest size, then the longest trials, where enough trials fit, a full trial ends in
    the search's share of the budget, and the best trial's epochs with those it trains on after
    reach MIN_FULL_EPOCHS; and whether it is the floor's fewer trials. None if none does."""
    fixed = "epochs" not in space.auto
    min_trials = MIN_TRIALS if "num_samples" in space.auto else space.search.num_samples
    search_s, on_s = budget_s * (1 - share), budget_s * share
    plans = [pricing.plan(size, epochs, search_s, on_s) for size in sizes
             for epochs in epoch_options(space, pricing.grace, pricing.eta, share)]

    def holds(p: Plan, fewest: int) -> bool:
        return p.trials >= fewest and p.full_s <= search_s and (fixed or p.epochs + p.train_on_epochs >= MIN_FULL_EPOCHS)

    fits = [p for p in plans if holds(p, min_trials)]
    if fits:
        return fits[0], False
    if space.min_image_size is not None and "num_samples" in space.auto:
        # Below data.min_image_size the set loses what tells its classes apart: fewer trials at
        # the floor rather than smaller images (docs/time-budget.md).
        fits = [p for p in plans if p.size == sizes[-1] and holds(p, MIN_TRIALS_AT_FLOOR)]
        if fits:
            return fits[0], True
    return None


def needed_budget(p: Plan, space: Space, pricing: Pricing, share: float) -> float:
    """The whole budget that holds plan ``p``'s search as :func:`fitting_plan` asks: its trials
    and its full trial in the trials' share, and the epochs the best trial trains on in the rest."""
    min_trials = MIN_TRIALS if "num_samples" in space.auto else space.search.num_samples
    trials_s = max((p.full_s + (min_trials - 1) * p.trial_s) / (pricing.slots * SAFETY), p.full_s)
    if "epochs" not in space.auto or p.epochs >= MIN_FULL_EPOCHS:
        return trials_s / (1 - share)
    # Shorter full trials are options only with a share (full_epochs' minimum otherwise).
    return max(trials_s / (1 - share), (MIN_FULL_EPOCHS - p.epochs) * p.epoch_s / (share * SAFETY))


def too_short(space: Space, pricing: Pricing, sizes: list, budget_s: float, share: float, steps: int,
              widen: int) -> Sizing:
    """A budget too short at every size: the warning's budget and, with trials ``auto``, the
    default configuration alone; else the file's trials at the smallest size, longest trials
    that end in time (no training on)."""
    settings, grace, slots = space.search, pricing.grace, pricing.slots
    search_s, on_s = budget_s * (1 - share), budget_s * share
    options = epoch_options(space, grace, pricing.eta, share)
    smallest = [pricing.plan(sizes[-1], epochs, search_s, on_s) for epochs in options]
    cheapest = min(smallest, key=lambda p: needed_budget(p, space, pricing, share))
    # What the warning names: the budget a search needs at the smallest size (training on included).
    short_of, short_epochs = needed_budget(cheapest, space, pricing, share), cheapest.epochs
    if "num_samples" not in space.auto:  # the file asked for a search: it gets one, and the warning
        options = [space.epochs] if "epochs" not in space.auto else full_epochs(grace, pricing.eta)
        last = [pricing.plan(sizes[-1], epochs, budget_s, 0.0) for epochs in options]
        p = next((p for p in last if p.full_s <= budget_s), last[-1])
        return Sizing(p.epochs, min(grace, p.epochs), settings.num_samples, p.size, steps, max(p.trials, 1),
                      p.epoch_s, max(budget_s - p.epoch_s * min(grace, p.epochs) - TRIAL_START_S, 0.0), slots,
                      short_of, short_epochs=short_epochs, search_s=budget_s)
    # The default configuration alone on a node's trials' resources, at the largest size where it
    # trains MIN_FULL_EPOCHS in the budget (else the smallest); Ray's time budget ends it.
    cost, n_train, n_val, batch = pricing.cost, pricing.n_train, pricing.n_val, pricing.batch
    alone_capacity = budget_s * widen * SAFETY - TRIAL_START_S
    size = next((s for s in sizes if alone_capacity / cost.epoch_s(n_train, n_val, batch, s) >= MIN_FULL_EPOCHS),
                sizes[-1])
    epoch_s = cost.epoch_s(n_train, n_val, batch, size)
    epochs = space.epochs if "epochs" not in space.auto else max(1, math.ceil(2 * alone_capacity / epoch_s))
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
