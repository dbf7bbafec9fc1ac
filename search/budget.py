"""How much training a search gives its trials: ASHA's rungs from the set's size, and, given a time
budget, the epochs per trial, the number of trials and the image size that fill it.

**Rungs.** ASHA compares trials at its first rung; a value there must already rank them. After
one epoch of a 720-image set (11 optimizer steps) every trial's AUC is noise, and ASHA stops
trials at random. So the first rung (``search.grace_period: auto``, the default) comes after
at least :data:`MIN_RUNG_STEPS` optimizer steps, whatever the set's size::

    steps per epoch = training images // batch size        (the ragged batch is dropped)
    grace period    = ceil(MIN_RUNG_STEPS / steps per epoch) epochs, at most max_t / reduction factor

``benchmarks/rung_correlation.py`` measures how well a trial's value after a number of steps
ranks it against its final value on sets of several sizes; BENCHMARKS.md has the figures that
set :data:`MIN_RUNG_STEPS`. A hard set needs more (simulated substructure: about 600 steps), which
is not known before the search; there the values at the rungs are all within the validation
split's noise, and the rung stops nothing on it (:class:`search.asha.MarginASHA`,
``search.rung_margin``). The expected cost below counts ASHA's 1 / reduction_factor share going
on past each rung; with the margin more may go on on such a set, and the time budget then ends
the search with fewer trials than expected, not later.

**Time budget.** With ``search.time_budget: SECONDS`` the trials run for that long (Ray stops any
still running then). Before the search, a few training steps and a validation batch of the
default configuration (of each backbone choice) are timed as a trial would run them
(:func:`trainable.train.time_training`; in the driver on a local Ray, else as a Ray task with a
trial's resources: :func:`measure`), and what the file leaves ``auto`` is sized from them:

* ``trial.epochs: auto``: ASHA's ``max_t`` = grace period x reduction factor^k, with the largest
  k (from :data:`MAX_PROMOTIONS` down to :data:`MIN_PROMOTIONS`, and no fewer than
  :data:`MIN_FULL_EPOCHS` epochs: :func:`full_epochs`) that still leaves time for
  ``search.num_samples`` trials (``auto``: :data:`MIN_TRIALS`) and lets a full trial end within
  the budget. A trial's expected cost under ASHA counts a trial stopped at rung j for its epochs
  up to rung j only (:func:`asha_epochs`); the first trial runs all of max_t (asynchronous ASHA
  promotes a trial that is alone at its rung).
* ``search.num_samples: auto``: trials keep starting while one could still reach its first rung
  before the budget ends; the expected number is printed.
* ``data.image_size: auto``: the images keep their native size when the budget holds such a
  search at it; otherwise the largest of :data:`IMAGE_SIZES` that does (the cost is timed at
  the native and the smallest size, and taken as a line in the pixel count between them).
  Smaller images before shorter trials: at equal compute the space's default configuration
  trains for the whole budget, and a search whose winner stopped after a few epochs loses to it
  (BENCHMARKS.md, "Search against the default configuration").
* ``data.min_image_size`` (with ``image_size: auto``): no size under it is chosen. When no size
  above it holds :data:`MIN_TRIALS`, the search runs at the floor with as many trials as fit
  there, down to :data:`MIN_TRIALS_AT_FLOOR`: fewer trials rather than images too small to
  tell the classes apart. On 900 simulated lens images the search at 32 px lost 0.06 of
  held-out ROC AUC to one of 5 trials at 48 px (BENCHMARKS.md, "The smallest image size").

**The best trial trains on.** Under asynchronous ASHA the winner (often the default
configuration, the first trial) trains ``max_t`` epochs on one trial's resources while the other
slots try other configurations; trained alone for all those epochs, the default beat such a
search on two sets (BENCHMARKS.md). So a share of the budget (``search.train_on``, ``auto``:
:data:`TRAIN_ON`) is kept from the trials: when they end, the best one goes on from its last
epoch on the resources of as many trials as one node holds until the budget ends
(:mod:`search.train_on`), and the time the trials leave unused goes to it too. ``max_t`` may then
be as short as ``grace x reduction_factor`` (:data:`MIN_PROMOTIONS_TRAIN_ON`) when its epochs and
those trained on (counted at one trial's speed) reach :data:`MIN_FULL_EPOCHS`; larger images come
before longer trials, as without it.

**A budget too short for a search.** A search of a few trials whose winner stopped early loses
to the default configuration trained for the whole budget (BENCHMARKS.md: on 4,000 lens images,
0.913 against 0.966 test AUC). So when no size holds the rule and ``search.num_samples`` is
``auto``, the default configuration (the first ``start_from``, completed) trains alone, on the
resources of as many trials as one node holds, at the largest size where it gets
:data:`MIN_FULL_EPOCHS` epochs, until the budget ends; a printed warning gives the budget a
search needs. A file that sets ``num_samples`` gets its search at the smallest size, and the
warning.

The expected cost is scaled by :data:`SAFETY` (trials that share a node slow each other, and ASHA
promotes early trials more often than the average says). The result is one printed line and is
written into the saved space (``space.yaml``), so ``--resume`` continues with the same sizes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from search.space import AUTO, Distribution, Space
from trainable.config import TrainConfig

MIN_RUNG_STEPS = 100  # optimizer steps before ASHA's first rung (BENCHMARKS.md, "Where the first rung goes")
MIN_TRIALS = 8  # a search of fewer configurations is hardly a search
MIN_TRIALS_AT_FLOOR = 4  # ... but at data.min_image_size, fewer trials rather than smaller images
MAX_PROMOTIONS = 3  # max_t at most grace x reduction_factor^3; more budget buys more trials
MIN_PROMOTIONS = 2  # max_t at least grace x reduction_factor^2: the winner trains well past the rungs
MIN_PROMOTIONS_TRAIN_ON = 1  # ... or ^1 when the best trial trains on after the search (search.train_on)
MIN_FULL_EPOCHS = 20  # and at least this many epochs (BENCHMARKS.md: the default still gains after 15)
IMAGE_SIZES = (96, 80, 64, 48, 32)  # what data.image_size: auto may shrink to, largest first
SAFETY = 0.85  # of the budget the expected cost may fill
TRAIN_ON = 1 / 3  # of a time budget: the best trial trains on after the search (search.train_on: auto)
TRIAL_START_S = 3.0  # a trial's start: Ray schedules it, the model is built, the data placed
EPOCH_EXTRA_S = 0.3  # per epoch besides training and validation: the checkpoint, the report


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


@dataclass(frozen=True)
class Cost:
    """Measured seconds per training step and per validated image at ``image_size`` pixels (the
    set's native side), at the trial's batch size, averaged over the backbone choices; and, when
    the image size is ``auto``, the same at ``small_size``.

    Between (and beyond) the two sizes the cost is a line in the pixel count: a fixed part per
    step (the optimizer, Python, the augmentations' calls) and a part per pixel. With one size
    only, all of it is taken as per pixel. On lens4000 that took a 48 px epoch for 32 s; it took
    47 s."""

    step_s: float
    val_image_s: float
    image_size: int
    small_step_s: float | None = None
    small_val_image_s: float | None = None
    small_size: int | None = None

    def _at(self, native: float, small: float | None, side: int) -> float:
        pixels = side * side
        if small is None or self.small_size is None or self.small_size >= self.image_size:
            return native * pixels / self.image_size ** 2
        slope = max(native - small, 0.0) / (self.image_size ** 2 - self.small_size ** 2)  # never cheaper larger
        return max(small + slope * (pixels - self.small_size ** 2), 0.0)

    def epoch_s(self, n_train: int, n_val: int, batch_size: int, image_size: int | None = None) -> float:
        side = image_size or self.image_size
        step = self._at(self.step_s, self.small_step_s, side)
        image = self._at(self.val_image_s, self.small_val_image_s, side)
        return steps_per_epoch(n_train, batch_size) * step + n_val * image + EPOCH_EXTRA_S


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
            trains on, on ``widen`` trials' resources (:mod:`search.train_on`); what the trials
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


def largest_batch(space: Space) -> int:
    value = space.trial.get("batch_size", space.space.get("batch_size", TrainConfig.batch_size))
    if isinstance(value, Distribution):
        return max(value.values)
    return value


def _middle(dist: Distribution) -> Any:
    if dist.kind == "choice":
        return dist.values[0]
    low, high = dist.values
    if dist.kind == "int":
        return (low + high) // 2
    return math.sqrt(low * high) if dist.kind == "loguniform" else (low + high) / 2


def complete_point(space: Space, point: dict[str, Any]) -> dict[str, Any]:
    """A ``start_from`` point with every other searched parameter that applies set: the
    trainable's default where the parameter's range holds it, else the range's middle
    (geometric for loguniform) or its first choice. So "the space's default configuration" is
    one configuration, not one with random parts."""
    from search.space import dependency_order

    defaults = TrainConfig().to_dict()
    chosen = {**space.trial, **{k: v for k, v in space.space.items() if not isinstance(v, Distribution)}}
    out = {}
    for key in dependency_order(space.space):
        dist = space.space[key]
        if not isinstance(dist, Distribution):
            continue
        if not all(chosen.get(other) in wanted for other, wanted in dist.when.items()):
            continue
        if key in point:
            value = point[key]
        elif dist.contains(defaults.get(key)):
            value = defaults[key]
        else:
            value = _middle(dist)
        chosen[key] = out[key] = value
    return out


def default_config(space: Space, backbone: str | None = None) -> dict[str, Any]:
    """The space's default configuration (its first ``start_from``, completed) as trial settings."""
    point = complete_point(space, dict(space.search.start_from[0]) if space.search.start_from else {})
    fixed = {k: v for k, v in space.space.items() if not isinstance(v, Distribution)}
    config = {**space.trial, **fixed, **point}
    if backbone is not None:
        config["backbone"] = backbone
    return config


def backbone_choices(space: Space) -> list[str | None]:
    value = space.space.get("backbone")
    return list(value.values) if isinstance(value, Distribution) and value.kind == "choice" else [None]


def image_sizes(native: int, auto: bool, floor: int | None = None) -> list[int | None]:
    """Candidate image sides, largest first: native (None) and, for ``auto``, the smaller ones,
    none under ``floor`` (``data.min_image_size``; the floor itself is a candidate)."""
    if not auto:
        return [None]
    smaller = [s for s in IMAGE_SIZES if s < native and (floor is None or s > floor)]
    if floor is not None and floor < native:
        smaller.append(floor)
    return [None] + smaller


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


def measure(space: Space, dataset, local: bool) -> Cost:
    """Time the default configuration (each backbone choice) as a trial would run it: the mean
    cost at the set's native size, and, when ``data.image_size`` is ``auto``, at the smallest
    size it may choose too (the smallest of :data:`IMAGE_SIZES`, or ``data.min_image_size``).

    ``local`` (Ray runs on this machine and a trial needs no GPU, or this process sees one): here,
    with the trial's CPUs as torch threads, so no worker has to start for it. Otherwise as a Ray
    task with a trial's resources, on a node the trials will use."""
    import ray
    import torch

    from trainable.train import time_training

    batch = largest_batch(space)
    native = max(dataset.image_shape)
    samples = [small_copy(dataset, batch)]
    small = image_sizes(native, True, space.min_image_size)[-1]
    if "image_size" in space.auto and small is not None:
        samples.append(resized(samples[0], small))
    cpus, gpus = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    configs = [{**default_config(space, b), "batch_size": batch, "epochs": 1, "threads": max(1, int(cpus))}
               for b in backbone_choices(space)]
    if local:
        threads = torch.get_num_threads()
        try:
            results = [[time_training(config, sample) for config in configs] for sample in samples]
        finally:
            torch.set_num_threads(threads)
    else:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus)(time_training)
        handles = [ray.put(sample) for sample in samples]
        results = [ray.get([task.remote(config, handle) for config in configs]) for handle in handles]

    def mean(part: list[dict], key: str) -> float:
        return sum(r[key] for r in part) / len(part)

    extra = {}
    if len(results) > 1:
        extra = {"small_step_s": mean(results[1], "step_s"), "small_val_image_s": mean(results[1], "val_image_s"),
                 "small_size": small}
    return Cost(mean(results[0], "step_s"), mean(results[0], "val_image_s"), native, **extra)


def resized(dataset, side: int):
    """``dataset`` with its images resized to ``side`` pixels, as the data layer resizes them."""
    import torch.nn.functional as F

    images = F.interpolate(dataset.images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return dataclasses.replace(dataset, images=images.contiguous())


def small_copy(dataset, batch_size: int, steps: int = 4):
    """A few batches of the set's training and validation rows: all that timing needs."""
    import numpy as np

    train = dataset.splits["train"][: steps * batch_size]
    val = dataset.splits["val"][: 2 * batch_size]
    rows = np.concatenate([train, val])
    return dataclasses.replace(
        dataset, images=dataset.images[rows].clone(), labels=dataset.labels[rows].clone(),
        files=tuple(dataset.files[i] for i in rows), metadata=None,
        splits={"train": np.arange(len(train)), "val": np.arange(len(train), len(rows)),
                "test": np.arange(0)})
