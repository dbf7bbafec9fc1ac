"""The Ray Tune pieces of a search built from a checked :class:`~search.space.Space`: the
searcher, the scheduler, the run settings and the :class:`~ray.tune.Tuner` (new or restored)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from search.space import Distribution, Space, complete_point, define_by_run, dependency_order
from search.tune.progress import progress_reporter
from search.tune.searcher import PruningOptunaSearch
from search.tune.trainable import trainable_for, trial_name
from trainable.best import best_key
from trainable.data import ImageDataset

def grid_points(space: Space) -> list[dict[str, Any]]:
    """Every configuration of a grid search: the product of the choices (and integer ranges),
    a conditional parameter varying only where its ``when`` holds, each configuration once."""
    points: list[dict[str, Any]] = [{}]
    for key in dependency_order(space.space):
        value = space.space[key]
        expanded = []
        for point in points:
            chosen = {**space.trial, **point}
            if not isinstance(value, Distribution):
                expanded.append({**point, key: value})
            elif not all(chosen.get(other) in wanted for other, wanted in value.when.items()):
                expanded.append(point)
            else:
                options = value.values if value.kind == "choice" else range(value.values[0], value.values[1] + 1)
                expanded += [{**point, key: option} for option in options]
        points = expanded
    unique = {tuple(sorted(p.items(), key=lambda kv: kv[0])): p for p in points}
    return list(unique.values())


def startup_trials(num_samples: int) -> int:
    """Random trials before TPE models the results: Optuna's 10 for a long search, fewer for a
    short one (a quarter of it, at least 3), so a 12-trial search is not random throughout."""
    return max(3, min(10, num_samples // 4))


def build_searcher(space: Space, journal: str | os.PathLike | None = None, planned: int | None = None,
                   start_until: float | None = None, min_starts: int = 1):
    """The search algorithm: Optuna TPE (seeded; conditional parameters sampled jointly, pending
    trials counted with a constant liar, diverged trials infeasible), Optuna random sampling, or
    Ray's grid of :func:`grid_points`. Returns ``(searcher, num_samples)``.

    With ``journal`` (a file path), the Optuna study is kept in that journal file as the search
    runs (Optuna's ``JournalStorage``): the results folder's ``optuna.journal``, readable with
    ``optuna.load_study`` at any time, and what a resumed search's searcher reads back.

    ``start_from`` points are completed (:func:`search.space.complete_point`): the first trial
    is exactly the space's default configuration. ``planned``: the trials a time budget is expected
    to hold (sets TPE's random start-up trials, else ``num_samples`` does); ``start_until``: a
    ``time.time()`` after which no trial starts, once ``min_starts`` have
    (:class:`~search.tune.searcher.PruningOptunaSearch`)."""
    import optuna
    from ray.tune.search.basic_variant import BasicVariantGenerator

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = space.search
    if settings.algorithm == "grid":
        points = grid_points(space)
        return BasicVariantGenerator(points_to_evaluate=points, random_state=settings.seed), len(points)
    if settings.algorithm == "optuna":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=settings.seed, n_startup_trials=startup_trials(planned or settings.num_samples),
                multivariate=True, group=True, constant_liar=True)
    else:
        sampler = optuna.samplers.RandomSampler(seed=settings.seed)
    metric, mode = space.metric, space.mode
    if space.objectives:  # Optuna's TPE is multi-objective (MOTPE) when the study has several directions
        metric, mode = [m for m, _ in space.objectives], [d for _, d in space.objectives]
    storage = None
    if journal is not None:
        backend = optuna.storages.journal.JournalFileBackend(str(Path(journal).resolve()))
        storage = optuna.storages.JournalStorage(backend)
    searcher = PruningOptunaSearch(
        define_by_run(space), metric=metric, mode=mode, sampler=sampler,
        points_to_evaluate=[complete_point(space, dict(p)) for p in settings.start_from] or None,
        study_name=space.name, max_epochs=space.epochs, storage=storage, start_until=start_until,
        min_starts=min_starts)
    return searcher, settings.num_samples


def build_scheduler(space: Space, val_labels: np.ndarray | None = None):
    """ASHA over epochs (``max_t`` = the epoch budget), MO-ASHA on every objective
    (:class:`search.tune.schedulers.pareto_asha.ParetoASHA`), or none.

    With ``val_labels`` (the validation split's), ``search.rung_margin`` above 0 and a metric
    with a standard error (AUC, accuracy, F1), a rung stops a trial only when it is behind the
    cutoff by more than that many standard errors of the metric on those labels
    (:class:`search.tune.schedulers.margin_asha.MarginASHA`); otherwise, Ray's ASHA.

    ASHA compares trials at a rung by their best value so far (``best_<metric>``, which every
    trial reports), not by the rung epoch's own value: on a small validation split one epoch's
    value swings, and the best so far ranks trials against their final value better
    (BENCHMARKS.md, "Where does ASHA's first rung go?")."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from search.tune.schedulers.margin_asha import MarginASHA, margin_applies
    from search.tune.schedulers.pareto_asha import ParetoASHA

    settings = space.search
    if settings.scheduler == "none":
        return FIFOScheduler()
    if settings.scheduler == "mo_asha":
        return ParetoASHA("epoch", [best_key(space.metric), *(c for c, _ in space.costs)],
                          [space.mode, *(m for _, m in space.costs)], max_t=space.epochs,
                          grace_period=settings.grace_period, reduction_factor=settings.reduction_factor)
    options = dict(time_attr="epoch", metric=best_key(space.metric), mode=space.mode, max_t=space.epochs,
                   grace_period=settings.grace_period, reduction_factor=settings.reduction_factor)
    if margin_applies(space, val_labels):
        return MarginASHA(base_metric=space.metric, labels=val_labels, margin=settings.rung_margin, **options)
    return ASHAScheduler(**options)


def prepare_environment() -> None:
    """Ray settings the driver relies on, unless the user set them: the classic progress table
    (Ray's new output ignores a ``CLIReporter``), and the experiment state saved every 2 s, so a
    killed driver loses at most that much bookkeeping."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # Ray snapshots the experiment when a trial has written CheckpointConfig(num_to_keep)
    # checkpoints since the last snapshot (so a resumed search never names a deleted one); with
    # short epochs that is often, and wanted, not worth a warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def run_config(space: Space, name: str, storage: str, callbacks: list):
    from ray import tune

    return tune.RunConfig(
        name=name, storage_path=storage, callbacks=callbacks,
        progress_reporter=progress_reporter(space), verbose=1,
        # Each trial's two latest checkpoints; the latest holds the best epoch's weights too
        # (trainable.checkpoint). Keeping one makes Ray snapshot the whole experiment after every
        # epoch of every trial, a cost that grows with the trials (BENCHMARKS.md, "Does the
        # driver's cost grow over 1,000 trials?"); two cost twice the disk.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        # A trial whose worker or node died restarts from its latest checkpoint, twice at most.
        failure_config=tune.FailureConfig(max_failures=2),
    )


def build_tuner(space: Space, dataset: ImageDataset, name: str, storage: str, callbacks: list,
                sharing: str = "object_store", journal: str | os.PathLike | None = None,
                planned: int | None = None, start_until: float | None = None,
                time_budget_s: float | None = None, min_starts: int = 1):
    """A new search (``journal``, ``planned``, ``start_until``: see :func:`build_searcher`;
    ``time_budget_s``: when Ray stops every trial, default ``search.time_budget``)."""
    from ray import tune

    searcher, num_samples = build_searcher(space, journal, planned, start_until, min_starts)
    scheduler = build_scheduler(space, dataset.labels.numpy()[dataset.splits["val"]])
    # search.tune.schedulers.margin_asha.MarginASHA: what its margin is on this split.
    if hasattr(scheduler, "describe"):
        print(scheduler.describe(), flush=True)
    tune_config = tune.TuneConfig(
        # No metric here: the searcher, the scheduler and the table each have theirs (ASHA ranks
        # by best_<metric>, which Tune would refuse next to a TuneConfig metric).
        search_alg=searcher, scheduler=scheduler,
        num_samples=num_samples, max_concurrent_trials=space.search.max_concurrent,
        time_budget_s=time_budget_s or space.search.time_budget, reuse_actors=True, trial_name_creator=trial_name,
        trial_dirname_creator=trial_name)
    return tune.Tuner(trainable_for(space, dataset, sharing), tune_config=tune_config,
                      run_config=run_config(space, name, storage, callbacks))


def restore_tuner(path: str, space: Space, dataset: ImageDataset, sharing: str = "object_store"):
    """A search whose driver stopped: finished trials stay finished, the searcher's and the
    scheduler's state come back, unfinished and failed trials go on from their checkpoints."""
    from ray import tune

    return tune.Tuner.restore(path, trainable=trainable_for(space, dataset, sharing), resume_unfinished=True,
                              resume_errored=True, restart_errored=False)

