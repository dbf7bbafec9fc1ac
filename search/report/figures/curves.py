"""The learning curves: every trial's validation metric per epoch, each line ended as its trial
ended (completed, stopped by ASHA, diverged, out of memory, error), the best trial on top."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from search.files import HISTORY_FILE
from search.report.figures.common import Skipped, require, saved_figure
from trainable.metrics import label as metric_label

LINE_STYLES = {"completed": {"color": "tab:blue", "ls": "-", "alpha": 0.55},
               "stopped": {"color": "0.45", "ls": "-", "alpha": 0.6},
               "diverged": {"color": "tab:red", "ls": "--", "alpha": 0.7},
               "out_of_memory": {"color": "tab:brown", "ls": ":", "alpha": 0.7},
               "error": {"color": "tab:purple", "ls": ":", "alpha": 0.7},
               "unknown": {"color": "0.6", "ls": ":", "alpha": 0.6}}
END_MARKERS = {"stopped": {"marker": "o", "color": "tab:orange", "mec": "white", "ms": 5.5},
               "diverged": {"marker": "X", "color": "tab:red", "mec": "white", "ms": 8},
               "out_of_memory": {"marker": "s", "color": "tab:brown", "mec": "white", "ms": 6},
               "error": {"marker": "x", "color": "tab:purple", "mec": "tab:purple", "ms": 7}}


@dataclass
class Curve:
    """One trial's validation metric per epoch (finite, pre-divergence values only)."""

    trial: str
    status: str  # completed, stopped, diverged, out_of_memory, error, or unknown (not in summary.json)
    epochs: np.ndarray
    values: np.ndarray
    best: bool
    diverged_at: int | None = None  # the epoch it diverged at

    @property
    def end_marker(self) -> str | None:
        """How the end of the line is marked: ``stopped`` (by ASHA), ``diverged``, ``error``, or
        None for a trial that ran its whole budget."""
        return self.status if self.status in END_MARKERS else None


def learning_curves(history: pd.DataFrame, summary: dict[str, Any]) -> list[Curve]:
    """Every trial's curve of the search metric from ``history.csv``, with its status from the summary.

    Epochs flagged ``diverged`` report sentinel values (0 AUC, infinite loss), not measurements:
    they are left out of the line, and the divergence is marked at its end.
    """
    metric = summary["metric"]
    if metric not in history or "epoch" not in history:
        raise Skipped(f"{HISTORY_FILE} has no {metric} per epoch")
    status = {str(t["trial_id"]): t["status"] for t in summary.get("trials") or []}
    diverged = (pd.to_numeric(history["diverged"], errors="coerce").fillna(0).astype(bool)
                if "diverged" in history else pd.Series(False, index=history.index))
    curves = []
    for trial, rows in history.assign(_diverged=diverged).groupby("trial", sort=False):
        rows = rows.sort_values("epoch")
        values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(float)
        keep = np.isfinite(values) & ~rows["_diverged"].to_numpy()
        trial = str(trial)
        diverged_at = rows.loc[rows["_diverged"], "epoch"].min() if rows["_diverged"].any() else None
        if status.get(trial) == "diverged" and diverged_at is None:
            diverged_at = rows["epoch"].max()
        curves.append(Curve(trial, status.get(trial, "unknown"), rows["epoch"].to_numpy(int)[keep],
                            values[keep], trial == summary.get("best_trial"),
                            None if diverged_at is None else int(diverged_at)))
    if not curves:
        raise Skipped(f"{HISTORY_FILE} holds no epochs")
    return curves


def best_point(curve: Curve, summary: dict[str, Any]) -> tuple[int, float] | None:
    """(epoch, value) of a trial's best epoch: the one the trial recorded (``best_epoch`` in the
    summary, :mod:`trainable.best`), else the best of its curve by the same definition."""
    from trainable.best import best_of

    record = next((t for t in summary.get("trials") or [] if str(t.get("trial_id")) == curve.trial), {})
    epoch = record.get("best_epoch")
    if epoch is None:
        epoch = best_of(curve.values, curve.epochs, summary.get("mode", "max")).epoch
    where = np.flatnonzero(curve.epochs == epoch) if epoch is not None else []
    return (int(epoch), float(curve.values[where[0]])) if len(where) else None


def read_history(folder: Path) -> pd.DataFrame:
    """The results folder's per-epoch history, trial ids as strings."""
    return pd.read_csv(require(folder, HISTORY_FILE), dtype={"trial": str})


def plot_learning_curves(folder: Path, summary: dict[str, Any], png: Path) -> str:
    """Every trial's curve with its end marked, ASHA's rungs and the best trial's best epoch;
    returns the caption."""
    curves = learning_curves(read_history(folder), summary)
    metric, asha = summary["metric"], summary.get("scheduler") == "asha"
    stop_label = "stopped by ASHA" if asha else "stopped early"
    budget = max([int(summary.get("epochs") or 1)] + [int(c.epochs.max()) for c in curves if len(c.epochs)])
    best = next((c for c in curves if c.best), None)
    with saved_figure(png, figsize=(8.5, 4.6)) as fig:
        ax = fig.add_subplot()
        rungs = sorted({int(c.epochs[-1]) for c in curves if c.status == "stopped" and len(c.epochs)})
        for epoch in rungs:
            ax.axvline(epoch, color="0.88", lw=1, zorder=0)
        for curve in sorted(curves, key=lambda c: c.best):  # the best one drawn last, on top
            _draw_curve(ax, curve, summary)
        handles = _status_handles(curves, stop_label, best)
        if rungs and asha:
            handles.append(Line2D([], [], color="0.88", lw=3, label="ASHA rungs (stop epochs)"))
        handles += _mark_train_on(ax, summary, best)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set(xlabel="epoch", ylabel=metric_label(metric), xlim=(0.8, budget + 0.2),
               title=f"Learning curves of {len(curves)} trials, search {summary.get('name', '')}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color="0.93")
    return _caption(summary, sum(c.status == "stopped" for c in curves), stop_label)


def _draw_curve(ax, curve: Curve, summary: dict[str, Any]) -> None:
    """One trial's line in its status' style, its end marked as the trial ended, and the best
    trial's best epoch starred."""
    style = dict(LINE_STYLES.get(curve.status, LINE_STYLES["unknown"]))
    if curve.best:
        style.update(color="black", alpha=1.0, lw=2.4)
    ax.plot(curve.epochs, curve.values, lw=style.pop("lw", 1.2), zorder=3 if curve.best else 2,
            marker="." if len(curve.epochs) == 1 else None, **style)
    marker = END_MARKERS.get(curve.end_marker or "")
    if marker and len(curve.epochs):
        x = curve.diverged_at if curve.status == "diverged" else curve.epochs[-1]
        edge = 0.6 if marker["mec"] == "white" else 1.5  # a white rim, or the stroke of an x
        ax.plot(x, curve.values[-1], ls="none", zorder=4, mew=edge, **marker)
    elif marker:  # diverged before a single finite value: marked at the axis' foot
        ax.plot(curve.diverged_at or 1, 0.02, ls="none", transform=ax.get_xaxis_transform(),
                zorder=4, **marker)
    star = best_point(curve, summary) if curve.best else None
    if star is not None:
        ax.plot(*star, marker="*", ms=13, color="gold", mec="black", ls="none", zorder=5)


def _status_handles(curves: list[Curve], stop_label: str, best: Curve | None) -> list[Line2D]:
    """A legend entry for each status some trial ended in, with its count, then the best trial's."""
    handles = []
    for status in LINE_STYLES:
        n = sum(c.status == status for c in curves)
        if n:  # a line with its end marker in the middle, as legends draw them
            end = END_MARKERS.get(status)
            marker = {} if end is None else {"marker": end["marker"], "mfc": end["color"],
                                             "mec": end["color"], "ms": end["ms"]}
            line = {k: v for k, v in LINE_STYLES[status].items() if k != "alpha"}
            handles.append(Line2D([], [], lw=1.5, **line, **marker,
                                  label=f"{stop_label if status == 'stopped' else status.replace('_', ' ')} ({n})"))
    if best is not None:
        handles.append(Line2D([], [], color="black", lw=2.4, marker="*", ms=11, mfc="gold",
                              label=f"best trial {best.trial}"))
    return handles


def _mark_train_on(ax, summary: dict[str, Any], best: Curve | None) -> list[Line2D]:
    """The epoch after which the best trial trained on alone (``search.train_on``), dotted, and
    its legend entry; nothing when it did not."""
    on = summary.get("train_on")
    if not (on and best is not None and best.trial == str(on.get("trial_id"))):
        return []
    ax.axvline(on["from_epoch"] + 0.5, color="black", ls=":", lw=1, zorder=1)
    return [Line2D([], [], color="black", ls=":", lw=1,
                   label=f"the best trained on alone after epoch {on['from_epoch']}")]


def _caption(summary: dict[str, Any], stopped: int, stop_label: str) -> str:
    """What the learning curves show: the metric, the stopped trials and the best, and the epochs
    the best trained on alone."""
    metric = summary["metric"]
    text = (f"{metric} on the validation split after every epoch; {stopped} trial(s) {stop_label} "
            f"(orange dots, at the rungs' epochs), the best trial in black, its best epoch starred."
            if stopped else f"{metric} on the validation split after every epoch; the best trial in black.")
    if summary.get("train_on"):
        text += (f" After epoch {summary['train_on']['from_epoch']} (dotted) the best trial trained on alone "
                 f"on the node's resources (search.train_on).")
    return text
