"""What a finished search leaves: the leaderboard, the best model tested, and the results folder.

``results/<name>/`` holds

* ``summary.json``: the search, its best trial (``final.pick``'s), its best configuration, the
  best validation value, the final model's test metrics at its threshold (``test``), the final stage's steps side
  by side on the validation and test splits (``final``: the best trial as the search left it,
  calibrated, the ensemble, with TTA; :mod:`search.final`), and every trial (id, configuration,
  status, epochs run, best value, the Ray node it ran on); a multi-objective search adds its
  ``objectives``, the ``pareto`` set (the trials no other beats on every objective,
  :mod:`search.results.pareto`), what ``pick`` took and the final model's ``model_costs``;
* ``leaderboard.csv``: every trial, best first;
* ``best_config.yaml``: a space file that retrains exactly the best configuration;
* ``best_model.pt``: the final model: the best checkpoints' weights and settings, its
  temperature and threshold (:mod:`trainable.export`);
* ``optuna.journal``: the Optuna study, kept there by the searcher as the search runs (pruned
  trials at the epoch they were stopped), for ``optuna.load_study`` and ``optuna.importance``;
* ``history.csv``: every epoch of every trial (the learning curves);
* ``test_predictions.csv`` and ``misclassified.npz``: the best model on the test split, image by
  image, and its most confident mistakes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.space import complete_point
from search.files import HISTORY_FILE, LEADERBOARD_FILE, STUDY_FILE, SUMMARY_FILE
from search.results.pareto import pareto_records, pick_trial, pool_throughput
from search.space import Distribution, Space
from trainable.best import BEST_EPOCH, Best, best_key, best_of, finite, top, within
from trainable.data import ImageDataset
from trainable.metrics import standard_error

STATUSES = ("completed", "stopped", "diverged", "out_of_memory", "error")


def trial_best(result, space: Space) -> Best:
    """A trial's best value and epoch: as the trial reported them (:mod:`trainable.best`), else
    worked out the same way from the epochs it reported (a trial that failed before its first)."""
    metrics = result.metrics or {}
    value = finite(metrics.get(best_key(space.metric)))
    if value is not None:
        return Best(space.mode, value, int(metrics.get(BEST_EPOCH) or 0) or None)
    frame = result.metrics_dataframe
    if frame is None or space.metric not in frame or "epoch" not in frame:
        return Best(space.mode)
    return best_of(frame[space.metric], frame["epoch"], space.mode,
                   frame["diverged"] if "diverged" in frame else None)


def trial_records(grid, space: Space, val_labels: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One record per trial: id, configuration, status, epochs run, best value and epoch, node.

    With ``val_labels`` (the validation split's) and ``search.favour_default``, the trial that ran
    the space's default configuration is marked (``default``) with the standard error of its value
    (``margin``): :func:`rank` keeps it first unless a trial beats it by more than that."""
    records = []
    for result in grid:
        metrics = result.metrics or {}
        best = trial_best(result, space)
        epochs = int(metrics.get("epoch", 0) or 0)
        if result.error is not None:
            status = "error"
        elif metrics.get("out_of_memory"):
            status = "out_of_memory"
        elif metrics.get("diverged"):
            status = "diverged"
        elif epochs >= space.epochs:
            status = "completed"
        else:
            status = "stopped"  # by ASHA, or unfinished when a time budget ended the search
        records.append({
            "trial_id": metrics.get("trial_id") or Path(result.path).name,
            "config": {**space.trial, **(result.config or {})},
            "status": status, "epochs": epochs, "best": best.value, "best_epoch": best.epoch,
            "best_val_loss": loss_at(result, best.epoch),
            "node_id": metrics.get("node_id"), "path": result.path,
            "error": None if result.error is None else str(result.error).strip().splitlines()[-1][:300],
        })
        if space.costs:  # measured once by the trial, reported with every epoch (trainable.cost)
            records[-1]["costs"] = {name: finite(metrics.get(name)) for name, _ in space.costs}
    pool_throughput(records)
    if val_labels is not None and space.search.favour_default:
        mark_default(records, space, val_labels)
    return records


def is_default(config: dict[str, Any], point: dict[str, Any]) -> bool:
    """Whether a trial's configuration is ``point`` (floats compared to 1e-9)."""
    def same(a, b):
        if isinstance(a, float) or isinstance(b, float):
            return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
        return a == b
    return all(same(config.get(key), value) for key, value in point.items())


def mark_default(records: list[dict[str, Any]], space: Space, val_labels: np.ndarray) -> dict[str, Any] | None:
    """Mark the first trial that ran the space's default configuration (its first ``start_from``,
    completed as the searcher completed it) with the standard error of its best value
    (:func:`trainable.metrics.standard_error`); returns that record, or None (no ``start_from``, no
    such trial with a value, or a metric without a standard error, such as a loss)."""
    if not space.search.start_from:
        return None
    point = complete_point(space, dict(space.search.start_from[0]))
    for record in records:
        if record["best"] is not None and is_default(record["config"], point):
            margin = standard_error(space.metric, record["best"], val_labels)
            if margin is None:
                return None
            record.update(default=True, margin=margin)
            return record
    return None


def loss_at(result, epoch: int | None) -> float | None:
    """The validation loss a trial reported at ``epoch`` (None if it did not)."""
    frame = result.metrics_dataframe
    if epoch is None or frame is None or "val_loss" not in frame or "epoch" not in frame:
        return None
    rows = frame.loc[frame["epoch"] == epoch, "val_loss"]
    return finite(rows.iloc[-1]) if len(rows) else None


def rank(records: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Trials with a value, best first, then the rest. Ties (accuracy on a small validation split
    moves in steps of one image, so it often ties) go to the lower validation loss at the best
    epoch, then to fewer epochs.

    The one-standard-error rule: a trial marked ``default`` (:func:`mark_default`) comes first
    unless the best trial beats it by more than its ``margin``. The best of many trials on a small
    validation split is the luckiest as much as the best; leaving the default for a difference
    within the split's noise loses to the default trained alone (BENCHMARKS.md, "Does the search
    beat its default configuration at equal compute?")."""
    scored = [r for r in records if r["best"] is not None]
    scored.sort(key=lambda r: ((-r["best"] if mode == "max" else r["best"]),
                               math.inf if r.get("best_val_loss") is None else r["best_val_loss"], r["epochs"]))
    default = next((r for r in scored if r.get("default") and r.get("margin") is not None), None)
    if default is not None and within(default["best"], scored[0]["best"], default["margin"], mode):
        scored.remove(default)
        scored.insert(0, default)
    return scored + [r for r in records if r["best"] is None]


def kept_default(ranked: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """What the one-standard-error rule did, for the summary: the default trial, its value and
    margin, the best value of another trial, whether the default ranks first (``first``) and
    whether it does so by the rule alone, another trial's value being better (``decided``);
    None when no trial is marked default."""
    default = next((r for r in ranked if r.get("default")), None)
    if default is None:
        return None
    others = [r["best"] for r in ranked if r is not default and r["best"] is not None]
    other = top(others, mode)
    first = ranked[0] is default
    decided = first and other is not None and not within(default["best"], other, 0.0, mode)
    return {"trial_id": default["trial_id"], "best": default["best"], "margin": default["margin"],
            "best_other": other, "first": first, "decided": decided}


def leaderboard(records: list[dict[str, Any]], space: Space, top: int | None = 10,
                columns: list[str] | None = None) -> pd.DataFrame:
    """The ranked trials with their searched parameters (or only ``columns`` of them)."""
    searched = columns or [k for k, v in space.space.items() if isinstance(v, Distribution)]
    rows = []
    for place, record in enumerate(rank(records, space.mode)[:top], 1):
        row = {"rank": place, "trial": record["trial_id"], space.metric: record["best"],
               **{name: (record.get("costs") or {}).get(name) for name, _ in space.costs},
               "epochs": record["epochs"], "status": record["status"]}
        row.update({k: record["config"].get(k, "") for k in searched})
        rows.append(row)
    return pd.DataFrame(rows)


def format_table(frame: pd.DataFrame) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}" if math.isfinite(value) else "-"
        return "-" if value is None or value == "" else str(value)
    return frame.to_string(index=False, formatters={c: cell for c in frame.columns})


def write_history(grid, folder: Path) -> None:
    """``history.csv``: every epoch every trial reported (trial, epoch, losses and metrics, node)."""
    frames = []
    for result in grid:
        frame = result.metrics_dataframe
        if frame is None or "epoch" not in frame:
            continue
        keep = [c for c in ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "val_auc", "val_tpr10", "lr",
                            "diverged", "node_id", "time_total_s", "timestamp") if c in frame]
        frame = frame[keep].copy()
        frame.insert(0, "trial", (result.metrics or {}).get("trial_id") or Path(result.path).name)
        frames.append(frame)
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial", "epoch"])
    history.to_csv(folder / HISTORY_FILE, index=False)


def pareto_row(record: dict[str, Any], space: Space) -> dict[str, Any]:
    """A trial of the Pareto set as the summary lists it: its objectives, epochs, status, backbone."""
    return {"trial_id": record["trial_id"], space.metric: record["best"], **record["costs"],
            "epochs": record["epochs"], "status": record["status"], "backbone": record["config"].get("backbone")}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite(value)
    return value


def summarize(grid, space: Space, name: str, dataset: ImageDataset, folder: Path, experiment_path: str,
              complete: bool = True, cluster: dict | None = None,
              extra: dict | None = None) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Rank the trials and write ``leaderboard.csv`` and ``history.csv``.

    ``cluster`` (the Ray address, node count, data sharing and storage) and ``extra`` (the
    search's sizing, :mod:`search.plan`, and how long its trials ran) are recorded as they are.

    Returns the summary (no final model yet: :mod:`search.final` adds it), the trial records, and
    the ranked trials the final stage builds from (``final.pick``'s first).
    """
    folder.mkdir(parents=True, exist_ok=True)
    records = trial_records(grid, space, dataset.split("val")[1].numpy())
    ranked = rank(records, space.mode)
    leaderboard(records, space, top=None).to_csv(folder / LEADERBOARD_FILE, index=False)
    write_history(grid, folder)
    summary: dict[str, Any] = {
        "name": name, "space_file": space.path, "metric": space.metric, "mode": space.mode,
        "epochs": space.epochs, "algorithm": space.search.algorithm, "scheduler": space.search.scheduler,
        "num_trials": len(records), "complete": complete, "trial_settings": dict(space.trial),
        "data": {"splits": {k: int(len(v)) for k, v in dataset.splits.items()},
                 "image_shape": list(dataset.image_shape), "class_names": list(dataset.class_names)},
        "status_counts": {s: sum(r["status"] == s for r in records) for s in STATUSES},
        "experiment_path": experiment_path, "cluster": cluster, "best_trial": None, "best_config": None,
        "best_val": None, "test": None, "model": None, "final": None, "kept_default": kept_default(ranked, space.mode),
        **(extra or {}),
    }
    if space.objectives:
        summary["objectives"] = [{"metric": name, "mode": mode} for name, mode in space.objectives]
        summary["pareto"] = [pareto_row(r, space) for r in pareto_records(records, space)]
    chosen, summary["pick"] = pick_trial(ranked, space)  # final.pick: the trial the final stage builds on
    return summary, records, chosen


def save_summary(folder: Path, summary: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """``summary.json``, with the study's file and every trial, written whole or not at all."""
    # The searcher kept the Optuna study in the results folder as it ran (search.tune.tuner).
    summary["study"] = str(folder / STUDY_FILE) if (folder / STUDY_FILE).is_file() else None
    summary["trials"] = [{k: v for k, v in r.items() if k != "path"} for r in records]
    partial = folder / f"{SUMMARY_FILE}.partial"
    partial.write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    partial.replace(folder / SUMMARY_FILE)
