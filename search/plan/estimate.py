"""What a search will spend, before anything runs: ``python -m search.run SPACE --dry-run``.

    python -m search.run spaces/lens_finding.yaml --dry-run                  # on this machine
    python -m search.run spaces/lens_finding.yaml --dry-run --gpus 64 --epoch-seconds 40
    python -m search.run spaces/lens_finding.yaml --dry-run --time           # time a step here

The file is checked as for a search; nothing is started, simulated or written. Printed:

* the images the trials see: counted from the set (loaded as a search loads it), or, for a set
  still to be simulated, from ``data.simulate``;
* how many trials run at once: on this machine, or on ``--gpus N`` GPUs with the file's GPU
  settings; at most ``search.max_concurrent``;
* the trials and ASHA's rungs (:mod:`search.plan`, as the search would settle them), and the
  epochs they train: at most (no trial stopped) and expected (all reach the first rung and a
  1 / reduction_factor share goes on past each rung: :func:`search.plan.asha_epochs`);
* given the seconds of one epoch of one trial (``--epoch-seconds``, the user's figure at the
  file's image size, or ``--time``: a few training steps and a validation batch of the default
  configuration, each backbone choice, timed here on random images of the set's shape, as a
  search with a time budget times them), the expected wall time, the GPU-hours (or CPU-hours)
  the trials hold, and how many trials the driver can keep running at its measured cost per
  trial (:data:`DRIVER_S_PER_TRIAL`).

A space with ``search.time_budget`` has epochs, trials and image size settled from a timed step
when it launches; the dry run settles them the same way when given ``--time`` or
``--epoch-seconds``, else says what is left to launch.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

from search.plan.cost import EPOCH_EXTRA_S, TRIAL_START_S, Cost, measure
from search.plan.data import check_data_source
from search.plan.rungs import asha_epochs, rungs, steps_per_epoch
from search.plan.sizing import Sizing, size_search
from search.space import Space, largest_batch, load_space
from trainable.errors import UserError

# The driver's own seconds per trial (Ray's hand-over of a worker, checkpoint copies, experiment
# snapshots, the searcher's suggestion), one after another: trials shorter than this times the
# trials running at once leave resources idle. Set from the 1,000-trial measurement (BENCHMARKS.md,
# "How much does the driver cost per trial?").
DRIVER_S_PER_TRIAL = 0.18


@dataclass(frozen=True)
class DataShape:
    """What sizing needs of a set: training and validation images, the side and channels of an
    image as the trials see it, the classes, and where the counts come from."""

    n_train: int
    n_val: int
    side: int
    channels: int
    classes: tuple[str, ...]
    source: str


def data_shape(space: Space) -> DataShape:
    """The set's counts: loaded when it is there (through the data layer's cache), else from the
    simulator the space names, split as the data layer would split it."""
    from trainable.simulate import KINDS

    data = space.data
    if not data.path or data.root.exists():
        from trainable.data import load_dataset

        dataset = load_dataset(data, where=f"{space.path}: data")
        return DataShape(len(dataset.splits["train"]), len(dataset.splits["val"]), max(dataset.image_shape),
                         dataset.in_chans, tuple(dataset.class_names), f"data: {dataset.summary()}")
    spec = data.simulate if isinstance(data.simulate, dict) else {"kind": data.simulate}
    kind = KINDS.get(spec.get("kind"))
    if kind is None:
        raise UserError(f"{space.path}: data.simulate: must be one of {', '.join(KINDS)}")
    n = spec.get("n") or kind.default_n
    paths = [path for path, _ in kind.plan(n)]
    shipped = {split: sum(p.startswith(f"{split}/") for p in paths) for split in ("val", "test")}
    pool = n - sum(shipped.values())
    carved = {split: shipped[split] or round(fraction * pool)
              for split, fraction in (("val", data.val_fraction), ("test", data.test_fraction))}
    n_train = n - carved["val"] - carved["test"]
    side = max(data.image_size) if data.image_size else kind.side
    return DataShape(n_train, carved["val"], side, 1, tuple(kind.classes),
                     f"data: {data.path} is not there yet: {n} images simulated at launch (data.simulate), "
                     f"about {n_train} for training and {carved['val']} for validation, {side} px")


def timing_set(shape: DataShape, batch_size: int):
    """Random images of the set's shape, enough for :func:`search.plan.measure` (what a step
    costs does not depend on the pixels)."""
    import numpy as np
    import torch

    from trainable.data import ImageDataset

    n_train, n_val = 4 * batch_size, 2 * batch_size
    rows = n_train + n_val
    generator = torch.Generator().manual_seed(0)
    return ImageDataset(
        images=torch.rand(rows, shape.channels, shape.side, shape.side, generator=generator),
        labels=torch.arange(rows) % len(shape.classes), class_names=shape.classes,
        splits={"train": np.arange(n_train), "val": np.arange(n_train, rows), "test": np.arange(0)},
        files=tuple(f"random-{i}" for i in range(rows)))


def trials_at_once(space: Space, gpus: int | None) -> tuple[int, str]:
    """Trials that run at once, and where: ``gpus`` GPUs (a cluster with CPUs enough), or this
    machine's CPUs and GPUs; at most ``search.max_concurrent``."""
    import torch

    cpu, gpu = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    if gpus is not None:
        fits, where = int(gpus // gpu) if gpu else None, f"{gpus} GPUs"
    else:
        have_cpu, have_gpu = os.cpu_count() or 1, torch.cuda.device_count()
        fits = min(int(have_cpu // cpu) if cpu else 1 << 20, int(have_gpu // gpu) if gpu else 1 << 20)
        where = f"this machine ({have_cpu} CPUs, {have_gpu} GPUs)"
    cap = space.search.max_concurrent
    slots = max(1, min(x for x in (fits, cap) if x is not None)) if (fits or cap) else 1
    line = f"{slots} trial(s) at once on {where}"
    if fits is not None and cap is not None and fits > cap:
        line += (f" (search.max_concurrent: {cap}; the resources hold {fits} trials of {gpu or cpu:g} "
                 f"{'GPU' if gpu else 'CPU'}: raise it to use them)")
    return slots, line


@dataclass(frozen=True)
class Estimate:
    """A search's expected spend.

    Attributes:
        trials: Trials started (with a time budget: those expected to start in it).
        max_t: A full trial's epochs.
        rungs: ASHA's rungs below ``max_t`` (none without early stopping).
        epochs_max: Epochs if no trial is stopped.
        epochs_expected: Epochs expected under ASHA.
        epoch_s: Seconds of one epoch of one trial, when known.
        slots: Trials at once.
        per_trial: GPUs a trial holds (CPUs when it holds none), and which.
        reduction_factor: ASHA's, as written in the file.
        budget_s: ``search.time_budget``, which ends the search.
    """

    trials: int
    max_t: int
    rungs: tuple[int, ...]
    epochs_max: int
    epochs_expected: float
    epoch_s: float | None
    slots: int
    per_trial: tuple[float, str]
    reduction_factor: str = "3"
    budget_s: float | None = None

    @property
    def trial_s(self) -> float | None:
        """A trial's expected seconds, its start included."""
        if self.epoch_s is None:
            return None
        return self.epochs_expected / self.trials * self.epoch_s + TRIAL_START_S

    @property
    def wall_s(self) -> float | None:
        """Expected wall time: the trials' seconds shared by the slots, and at least one full trial
        (asynchronous ASHA runs the first to ``max_t``)."""
        if self.epoch_s is None:
            return None
        if self.budget_s:
            return self.budget_s
        work = self.epochs_expected * self.epoch_s + self.trials * TRIAL_START_S
        return max(work / self.slots, self.max_t * self.epoch_s + TRIAL_START_S)

    @property
    def resource_hours(self) -> float | None:
        if self.epoch_s is None:
            return None
        return self.trials * self.trial_s * self.per_trial[0] / 3600

    @property
    def driver_slots(self) -> int | None:
        """Trials the driver keeps running: one hand-over every :data:`DRIVER_S_PER_TRIAL`."""
        return None if self.epoch_s is None else int(self.trial_s // DRIVER_S_PER_TRIAL)

    def lines(self) -> list[str]:
        marks = ", ".join(map(str, self.rungs)) or "none"
        out = [f"trials: {self.trials} of at most {self.max_t} epochs; ASHA's rungs at epochs {marks}",
               f"epochs: at most {self.epochs_max:,} (no trial stopped), expected {self.epochs_expected:,.0f} "
               f"(a 1/{self.reduction_factor} share of the trials goes on past each rung)"]
        if not self.rungs:
            out[-1] = f"epochs: {self.epochs_max:,} (no early stopping)"
        if self.epoch_s is None:
            out.append("time: give --epoch-seconds S (one epoch of one trial) or --time (time a step here) "
                       "for the wall time")
            return out
        amount, unit = self.per_trial
        wall = "the time budget" if self.budget_s else "about"
        out.append(f"time: at {self.epoch_s:.3g} s an epoch, {wall} {describe_s(self.wall_s)} of wall time with "
                   f"{self.slots} trial(s) at once; {self.resource_hours:,.1f} {unit}-hours "
                   f"({amount:g} {unit} a trial, {describe_s(self.trial_s)} a trial on average)")
        note = (f"driver: about {DRIVER_S_PER_TRIAL:g} s of its own a trial (BENCHMARKS.md, \"How much does the driver cost per trial?\"), "
                f"so it keeps about {self.driver_slots} trials of {describe_s(self.trial_s)} running")
        if self.driver_slots < self.slots:
            note += f": fewer than the {self.slots} slots, which would wait for it (longer trials, or fewer at once)"
        out.append(note)
        return out


def describe_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(space: Space, sizing: Sizing, slots: int, epoch_s: float | None) -> Estimate:
    """The spend of a search of ``space`` settled as ``sizing`` says."""
    settings = space.search
    eta, max_t = settings.reduction_factor, sizing.epochs
    trials = sizing.expected_trials or sizing.num_samples
    if settings.scheduler == "none" or sizing.alone:
        marks, per_trial = (), float(max_t)
    else:
        grace = min(sizing.grace_period, max_t)
        marks, per_trial = tuple(rungs(grace, max_t, eta)), asha_epochs(grace, max_t, eta)
    gpu = space.resources.get("gpu", 0)
    held = (float(gpu), "GPU") if gpu else (float(space.resources.get("cpu", 1)), "CPU")
    return Estimate(trials, max_t, marks, trials * max_t, trials * per_trial, epoch_s, slots, held,
                    reduction_factor=f"{eta:g}", budget_s=settings.time_budget)


def cost_from_epoch(epoch_s: float, shape: DataShape, batch_size: int) -> Cost:
    """A :class:`~search.plan.cost.Cost` whose epoch at the set's size takes ``epoch_s`` (a validated
    image costing what a training image does, half a step's image: no backward pass)."""
    steps = steps_per_epoch(shape.n_train, batch_size)
    step_s = max(epoch_s - EPOCH_EXTRA_S, 1e-6) / (steps + shape.n_val / (2 * batch_size))
    return Cost(step_s, step_s / (2 * batch_size), shape.side)


def check_flags(args: argparse.Namespace) -> None:
    given = [flag for flag, value in (("--gpus", args.gpus), ("--epoch-seconds", args.epoch_seconds),
                                      ("--time", args.time or None)) if value is not None]
    if given and not args.dry_run:
        raise UserError(f"{given[0]}: only with --dry-run")
    if args.dry_run and args.resume:
        raise UserError("--dry-run estimates a new search; it cannot go with --resume")
    if args.gpus is not None and args.gpus < 1:
        raise UserError(f"--gpus: must be a positive integer, got {args.gpus}")
    if args.epoch_seconds is not None and not (args.epoch_seconds > 0 and math.isfinite(args.epoch_seconds)):
        raise UserError(f"--epoch-seconds: must be a positive number, got {args.epoch_seconds:g}")
    if args.time and args.epoch_seconds is not None:
        raise UserError("--time and --epoch-seconds: give one")


def dry_run(args: argparse.Namespace) -> int:
    """Check the file, count the data, settle what the search would settle, print the estimate."""
    import torch


    gpu = args.gpus is not None or torch.cuda.is_available()
    space = load_space(args.space, args.set, has_gpu=gpu)
    check_data_source(space)
    variant = "its GPU settings" if gpu else "its cpu: block, as no GPU is here; --gpus N for a GPU cluster"
    print(f"dry run of {args.space} ({variant}): nothing is started or written", flush=True)
    shape = data_shape(space)
    print(shape.source, flush=True)
    slots, slots_line = trials_at_once(space, args.gpus)
    print(f"resources: {slots_line}", flush=True)
    if space.objectives:
        stopping = {"mo_asha": "MO-ASHA ranks trials at each rung by all of them",
                    "asha": "ASHA stops trials on the metric alone", "none": "no early stopping"}[space.search.scheduler]
        print(f"objectives: {', '.join(f'{m} ({d})' for m, d in space.objectives)}, each trial measuring its costs "
              f"once; {stopping}; the final model's trial: final.pick {space.final.pick}", flush=True)
    batch = largest_batch(space)
    cost = None
    if args.time:
        print("timing the default configuration's training steps here ...", flush=True)
        cost = measure(space, timing_set(shape, batch), local=True)
    elif args.epoch_seconds is not None:
        cost = cost_from_epoch(args.epoch_seconds, shape, batch)
    total = space.search.time_budget
    if total and cost is None:
        print(f"search.time_budget: {total:g} s; {', '.join(sorted(space.auto)) or 'nothing'} left auto, settled at "
              "launch from a timed step: give --time or --epoch-seconds S to settle it here", flush=True)
        return 0
    sizing = size_search(space, shape.n_train, shape.n_val, shape.side, slots,
                                cost if total else None, total, slots)
    print(sizing.rung_line(space.search.reduction_factor, space.search.scheduler), flush=True)
    if total:
        print(sizing.budget_line(total, cost, batch), flush=True)
        if sizing.short_line():
            print(sizing.short_line(), flush=True)
    epoch_s = None
    if cost is not None:
        epoch_s = sizing.epoch_s or cost.epoch_s(shape.n_train, shape.n_val, batch)
    for line in estimate(space, sizing, slots, epoch_s).lines():
        print(line, flush=True)
    return 0
