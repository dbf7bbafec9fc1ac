"""The best trial trains on: the last share of a time budget goes to the search's winner.

Under asynchronous ASHA the best configuration trains ``max_t`` epochs on one trial's resources,
while the others share the rest; trained alone for all the epochs the search spent, the space's
default configuration can beat such a search (BENCHMARKS.md, "Does the search beat its default
configuration at equal compute?"). So with a time budget a search keeps a share of it (``search.train_on``,
:func:`search.plan.train_on_share`) from the trials; when they end, the best trial (by the
search's ranking, :func:`search.results.records.rank`; in a multi-objective search the trial
``final.pick`` takes, :func:`search.results.pareto.pick_trial`) goes on from its last epoch, optimizer and
learning-rate schedule as they were, on the resources of as many trials as one node holds,
until the budget ends (an epoch that would end after it does not start). A schedule with cycles
is fitted to that end after each epoch (:func:`trainable.optim.end_with`): a cosine schedule's
cycle, or the warm-restart cycle the budget could not finish, ends with the budget's last epoch
instead of restarting for a few epochs at its top learning rate, or training on at its floor. Its
best epoch over all of them is what the final stage (:mod:`search.final`) takes.

It runs as one Ray task on a node the trials used (the checkpoint is read where Ray stored it)
and its epochs and checkpoint come back to the results folder's ``train_on/``: ``checkpoint/``,
``metrics.jsonl`` (one line per epoch trained on) and ``record.json``. A search resumed or
finalized again (``python -m search.final``) reads them back instead of training again; a driver
that died while the best trial trained on loses those epochs only, and ``--resume`` trains on
again.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.files import TRAIN_ON_DIR, TRAIN_ON_METRICS as METRICS_FILE, TRAIN_ON_RECORD as RECORD_FILE
from search.results.pareto import pick_trial
from search.results.records import kept_default, rank, trial_records
from search.space import Space
from trainable.best import BEST_EPOCH, best_key
from trainable.data import ImageDataset
from trainable.data.config import DataConfig
from trainable.report import CHECKPOINT_DIR

UNFIT = ("diverged", "out_of_memory", "error")  # a best trial in such a state does not go on


def trial_config(space: Space, result, **changes: Any) -> dict[str, Any]:
    """A trial's whole configuration (the file's fixed settings, then its searched ones), changed."""
    return {**space.trial, **(result.config or {}), **changes}


class TrainedOn:
    """The best trial's Ray result with the epochs it trained on after the search: what the
    results, the history and the final stage read of a trial (``path``, ``config``, ``error``,
    ``metrics``, ``metrics_dataframe``, ``checkpoint``)."""

    def __init__(self, result, folder: Path, history: list[dict[str, Any]]):
        from ray import tune

        self.path, self.config, self.error = result.path, result.config, result.error
        self.checkpoint = tune.Checkpoint.from_directory(str(folder / CHECKPOINT_DIR))
        frame, more = result.metrics_dataframe, pd.DataFrame(history)
        self.metrics_dataframe = more if frame is None else pd.concat([frame, more], ignore_index=True)
        self.metrics = {**(result.metrics or {}), **history[-1]}


def continue_trial(config: dict[str, Any], metric: str, mode: str, checkpoint, until: float,
                   dataset: ImageDataset | None = None, data: DataConfig | None = None):
    """The Ray task: restore ``checkpoint`` (a trial's latest), train on until ``until`` (a
    ``time.time()``); returns the last checkpoint's files and the metrics of every epoch trained,
    with the time each ended (``timestamp``, as Ray reports it)."""
    from search.tune.trainable import node_dataset
    from trainable.report import LocalReporter
    from trainable.train import train

    class Reporter(LocalReporter):
        def report(self, metrics, checkpoint_dir):
            super().report({**metrics, "timestamp": int(time.time())}, checkpoint_dir)

    with tempfile.TemporaryDirectory(prefix="train-on-") as root:
        checkpoint.to_directory(os.path.join(root, CHECKPOINT_DIR))
        reporter = Reporter(root)
        train(config, dataset if dataset is not None else node_dataset(data), reporter, metric, mode, until=until)
        files = {p.name: p.read_bytes() for p in Path(root, CHECKPOINT_DIR).iterdir() if p.is_file()}
        return files, reporter.history


def load(folder: Path, trial_id: str) -> list[dict[str, Any]] | None:
    """The epochs ``trial_id`` trained on, kept in ``folder/train_on`` (None if it did not)."""
    out = folder / TRAIN_ON_DIR
    try:
        record = json.loads((out / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("trial_id") != trial_id or not (out / CHECKPOINT_DIR).is_dir():
        return None
    history = [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines() if line.strip()]
    return history or None


def with_trained_on(grid, space: Space, folder: Path, val_labels: np.ndarray) -> tuple[list, dict[str, Any] | None]:
    """``grid``'s results, the best trial's (ranked with ``val_labels``, the validation split's,
    as :func:`search.results.records.rank` does) with the epochs it trained on (kept in ``folder``), and
    the record of that, or ``grid`` as it is and None."""
    ranked = pick_trial(rank(trial_records(grid, space, val_labels), space.mode), space)[0]
    if not ranked or ranked[0]["best"] is None:
        return list(grid), None
    trial_id = ranked[0]["trial_id"]
    history = load(folder, trial_id)
    if history is None:
        return list(grid), None
    out = folder / TRAIN_ON_DIR
    record = json.loads((out / RECORD_FILE).read_text())
    return [TrainedOn(r, out, history) if r.path == ranked[0]["path"] else r for r in grid], record


def keep(folder: Path, best: dict[str, Any], metric: str, files: dict[str, bytes],
         history: list[dict[str, Any]], how: dict[str, Any]) -> dict[str, Any]:
    """Write what trial ``best`` (its ranked record) trained on into ``folder/train_on``: the
    last checkpoint's ``files``, the epochs' ``history`` and the record (with ``how``: seconds,
    budget, widen), which it returns."""
    out = folder / TRAIN_ON_DIR
    (out / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    for name, data_bytes in files.items():
        (out / CHECKPOINT_DIR / name).write_bytes(data_bytes)
    (out / METRICS_FILE).write_text("".join(json.dumps(h) + "\n" for h in history))
    last = history[-1]
    record = {"trial_id": best["trial_id"], "from_epoch": best["epochs"], "to_epoch": int(last["epoch"]),
              **how, "best_before": best["best"], "best_epoch_before": best["best_epoch"],
              "best_after": last.get(best_key(metric)), "best_epoch_after": last.get(BEST_EPOCH)}
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def train_on(grid, space: Space, dataset: ImageDataset, sharing: str, folder: Path, seconds: float,
             widen: int) -> tuple[list, dict[str, Any] | None]:
    """Train the search's best trial on for ``seconds`` on ``widen`` trials' resources (see the
    module's docstring). Returns the results with it (:class:`TrainedOn`) and a record of what
    was done, or ``grid`` as it is and None when there is no trial to go on with."""
    import ray

    from search.tune.trainable import node_data

    val_labels = dataset.split("val")[1].numpy()
    results, record = with_trained_on(grid, space, folder, val_labels)
    if record is not None:
        print(f"train on: trial {record['trial_id']} trained on before (epochs {record['from_epoch']} to "
              f"{record['to_epoch']}), kept in {folder / TRAIN_ON_DIR}", flush=True)
        return results, record
    ranked = rank(trial_records(grid, space, val_labels), space.mode)
    picked, pick = pick_trial(ranked, space)  # final.pick: the trial the final model is built on
    best = picked[0] if picked and picked[0]["best"] is not None else None
    result = next((r for r in grid if best is not None and r.path == best["path"]), None)
    if result is None or result.checkpoint is None or best["status"] in UNFIT or seconds < 1:
        return list(grid), None
    frame = result.metrics_dataframe
    epoch_s = None
    if frame is not None and "time_this_iter_s" in frame and len(frame):
        epoch_s = float(frame["time_this_iter_s"].median())
    bound = best["epochs"] + (10_000 if not epoch_s else max(1, math.ceil(3 * seconds / epoch_s)))
    cpus, gpus = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    config = trial_config(space, result, epochs=bound, threads=max(1, int(cpus * widen)))
    metric = space.metric
    kept = kept_default(ranked, space.mode)
    which = ("the default configuration, first by search.favour_default (the best other: "
             f"{kept['best_other']:.4f})" if kept and kept["decided"] else "the best")
    if pick["rule"] != "best":
        which = f"picked by final.pick {pick['rule']}"
    print(f"train on: trial {best['trial_id']}, {which} ({metric} {best['best']:.4f} at epoch "
          f"{best['best_epoch']} of {best['epochs']}), goes on for {seconds:.0f} s on {widen} trial(s)' "
          f"resources ({cpus * widen:g} CPU, {gpus * widen:g} GPU)", flush=True)
    began, until = time.perf_counter(), time.time() + seconds
    task = ray.remote(num_cpus=cpus * widen, num_gpus=gpus * widen, max_retries=0)(continue_trial)
    if sharing == "path":
        handle = task.remote(config, metric, space.mode, result.checkpoint, until, data=node_data(space))
    else:
        handle = task.remote(config, metric, space.mode, result.checkpoint, until, dataset=dataset)
    try:
        files, history = ray.get(handle)
    except KeyboardInterrupt:  # stopped (search.stop): the task must not train on without the driver
        ray.cancel(handle, force=True)
        raise
    if not history:
        return list(grid), None
    record = keep(folder, best, metric, files, history, {"seconds": time.perf_counter() - began,
                                                         "budget_s": seconds, "widen": widen})
    print(f"train on: trial {best['trial_id']} trained epochs {record['from_epoch'] + 1} to {record['to_epoch']} "
          f"in {record['seconds']:.0f} s; best {metric} {best['best']:.4f} -> {record['best_after'] or math.nan:.4f} "
          f"(epoch {record['best_epoch_after']})", flush=True)
    return with_trained_on(grid, space, folder, val_labels)
