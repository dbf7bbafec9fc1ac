"""Configurations trained again after the search: the final stage's refit and seed check.

- ``final.refit: true``: the best configuration trained again from its start on the training and
  validation splits together, for as many epochs as it took to reach its best; it keeps the
  temperature and threshold fitted on the validation split before (that split is in its
  training data now, so nothing can be fitted or chosen on it after).
- ``final.seeds: n``: each of the top ``final.ensemble`` configurations trained again
  with ``n`` other seeds, as many epochs as its trial trained; the best validation value of each
  run, their mean and standard deviation beside the trial's own. A trial far above its seeds'
  mean was lucky: its value is partly the split's noise and its initialisation.

Both train, so they cost time after the search's budget and are off by default. Where the
search's Ray cluster is up (``python -m search.run``) the runs are Ray tasks on a trial's
resources, all submitted at once; without it (``python -m search.final``) they run one after
the other in this process.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.results.train_on import trial_config
from search.space import Space
from trainable.best import best_key
from trainable.data import ImageDataset
from trainable.data.config import DataConfig
from trainable.metrics import METRICS


@dataclass(frozen=True)
class Job:
    """One configuration to train: ``config`` (the trial's, with its epochs and seed) and whether
    the validation split is trained on too (``merge_val``, the refit)."""

    name: str
    config: dict[str, Any]
    merge_val: bool = False


def with_val_in_train(dataset: ImageDataset) -> ImageDataset:
    """The set with its validation images added to the training split (the test split apart)."""
    splits = dict(dataset.splits)
    splits["train"] = np.concatenate([splits["train"], splits["val"]])
    return dataclasses.replace(dataset, splits=splits)


def run_job(config: dict[str, Any], metric: str, mode: str, merge_val: bool = False,
            dataset: ImageDataset | None = None, data: DataConfig | None = None):
    """Train ``config`` from its start (also a Ray task); returns every epoch's metrics and, with
    ``merge_val``, the last epoch's weights (the refit has no split left to pick an epoch on)."""
    from search.tune.trainable import node_dataset
    from trainable import checkpoint
    from trainable.report import CHECKPOINT_DIR, LocalReporter
    from trainable.train import train

    dataset = dataset if dataset is not None else node_dataset(data)
    if merge_val:
        dataset = with_val_in_train(dataset)
    with tempfile.TemporaryDirectory(prefix="retrain-") as root:
        reporter = LocalReporter(root)
        train(config, dataset, reporter, metric, mode)
        weights = None
        if merge_val:
            state = checkpoint.load_state(Path(root, CHECKPOINT_DIR), "cpu")
            weights = {k: v.detach().cpu() for k, v in state["model"].items()}
        return reporter.history, weights


def run_jobs(jobs: list[Job], space: Space, dataset: ImageDataset, sharing: str | None = None) -> list:
    """Every job's ``(history, weights)``, in order: as Ray tasks on a trial's resources when Ray
    is up and ``sharing`` says how the trials got their data, else here, one after the other."""
    if not jobs:
        return []
    import ray

    if sharing is None or not ray.is_initialized():
        return [run_job(job.config, space.metric, space.mode, job.merge_val, dataset=dataset) for job in jobs]
    from search.tune.trainable import node_data

    cpus, gpus = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=1)(run_job)
    source = {"data": node_data(space)} if sharing == "path" else {"dataset": ray.put(dataset)}
    return ray.get([task.remote(job.config, space.metric, space.mode, job.merge_val, **source) for job in jobs])


def seed_jobs(chosen: list[tuple[dict[str, Any], Any]], space: Space, seeds: int) -> list[Job]:
    """``seeds`` runs of each chosen trial's configuration with other seeds, as many epochs as it
    trained."""
    jobs = []
    for record, result in chosen:
        base = trial_config(space, result)
        first = int(base.get("seed", 0))
        jobs += [Job(f"{record['trial_id']} seed {first + i}",
                     trial_config(space, result, seed=first + i, epochs=int(record["epochs"])))
                 for i in range(1, seeds + 1)]
    return jobs


def seed_check(chosen: list[tuple[dict[str, Any], Any]], histories: list[list[dict[str, Any]]],
               space: Space, seeds: int) -> list[dict[str, Any]]:
    """Per chosen trial: its value, its seeds' best values, their mean and standard deviation
    (``ddof=1``; 0 with one seed), and how many of those standard deviations the trial stands
    above (below, for ``min``) their mean (None when they agree exactly)."""
    key = best_key(space.metric)
    out = []
    for i, (record, _) in enumerate(chosen):
        runs = histories[i * seeds:(i + 1) * seeds]
        values = [float(h[-1].get(key, h[-1].get(space.metric, math.nan))) if h else math.nan for h in runs]
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        above = METRICS[space.metric].sign * (record["best"] - mean) / std if std > 0 else None
        out.append({"trial_id": record["trial_id"], "value": record["best"], "epochs": int(record["epochs"]),
                    "seeds": values, "mean": mean, "std": std, "above_mean_in_std": above})
    return out


def refit_job(record: dict[str, Any], result, space: Space) -> Job:
    """The best trial's configuration on train + val, for the epochs that reached its best."""
    return Job("refit", trial_config(space, result, epochs=int(record["best_epoch"])), merge_val=True)
