"""Parallel coordinates: the best trials' searched parameters side by side, one axis each and the
metric last, every trial a line coloured by its value."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from search.report.figures.common import Skipped, is_number, saved_figure

PARALLEL_TRIALS = 15
NA_POSITION = -0.14  # where a trial without a (conditional) parameter sits on its axis


@dataclass
class Axis:
    """One vertical axis of the parallel coordinates: where each trial crosses it, and its ticks."""

    name: str
    positions: list[float]  # one per trial, in [0, 1], or NA_POSITION when the trial lacks it
    ticks: list[tuple[float, str]]  # (position, label of the real value)
    log: bool = False


def parallel_axis(name: str, values: list[Any]) -> Axis:
    """One axis: numbers scaled to [0, 1] (log when positive and spanning over a decade) with
    ticks in real values; anything else as evenly spaced categories. None means absent."""
    present = [v for v in values if v is not None]
    na = [(NA_POSITION, "n/a")] if len(present) < len(values) else []
    if present and all(is_number(v) for v in present):
        low, high = min(present), max(present)
        log = low > 0 and high / low > 10
        scale = (lambda v: math.log10(v)) if log else (lambda v: float(v))
        lo, hi = scale(low), scale(high)
        span = hi - lo

        def position(v):
            return NA_POSITION if v is None else (0.5 if span == 0 else (scale(v) - lo) / span)

        distinct = sorted(set(present))
        if span == 0:
            ticks = [(0.5, f"{low:.3g}")]
        elif all(isinstance(v, int) for v in present) and len(distinct) <= 6:
            ticks = [(position(v), str(v)) for v in distinct]
        else:
            ticks = [(t, f"{(10 ** (lo + t * span) if log else lo + t * span):.3g}")
                     for t in np.linspace(0, 1, 5)]
        return Axis(name, [position(v) for v in values], ticks + na, log)
    categories = sorted({str(v) for v in present})
    spot = {c: (0.5 if len(categories) == 1 else i / (len(categories) - 1)) for i, c in enumerate(categories)}
    return Axis(name, [NA_POSITION if v is None else spot[str(v)] for v in values],
                [(p, c) for c, p in spot.items()] + na)


def searched_parameters(trials: list[dict[str, Any]]) -> list[str]:
    """The configuration keys whose value differs between trials (or that some trials lack)."""
    keys = list(dict.fromkeys(k for t in trials for k in (t.get("config") or {})))
    return [k for k in keys
            if len({json.dumps((t.get("config") or {}).get(k), sort_keys=True, default=str)
                    for t in trials}) > 1]


def parallel_data(summary: dict[str, Any], top: int = PARALLEL_TRIALS) -> tuple[list[dict], list[Axis]]:
    """The ``top`` best trials with a value, in the search's ranking (best first: the default
    configuration may lead on a lower value, ``search.favour_default``), and one axis per
    searched parameter, then the metric."""
    from search.results.records import rank

    trials = [t for t in summary.get("trials") or [] if is_number(t.get("best"))]
    if len(trials) < 2:
        raise Skipped(f"{len(trials)} trial(s) with a value: nothing to compare")
    params = searched_parameters(summary.get("trials") or [])
    if not params:
        raise Skipped("no parameter varies across the trials")
    trials = rank(trials, summary.get("mode", "max"))[:top]
    axes = [parallel_axis(p, [(t.get("config") or {}).get(p) for t in trials]) for p in params]
    return trials, axes + [parallel_axis(summary["metric"], [t["best"] for t in trials])]


def plot_parallel_coordinates(folder: Path, summary: dict[str, Any], png: Path) -> str:
    """The best trials as lines across one axis a searched parameter and the metric, coloured
    by the metric; returns the caption."""
    trials, axes = parallel_data(summary)
    metric, maximize = summary["metric"], summary.get("mode") == "max"
    values = np.array([t["best"] for t in trials])
    cmap = plt.get_cmap("viridis" if maximize else "viridis_r")
    norm = plt.Normalize(values.min(), values.max() if values.max() > values.min() else values.min() + 1e-9)
    with saved_figure(png, figsize=(max(6.5, 1.45 * len(axes) + 1.5), 4.8)) as fig:
        ax = fig.add_subplot()
        x = np.arange(len(axes))
        for i in reversed(range(len(trials))):  # the best trial drawn last, on top
            ax.plot(x, [a.positions[i] for a in axes], color=cmap(norm(values[i])),
                    lw=2.6 if i == 0 else 1.4, alpha=1.0 if i == 0 else 0.8, zorder=3 if i == 0 else 2)
        for k, axis in enumerate(axes):
            ax.axvline(k, color="0.25", lw=1, zorder=1)
            for y, label in axis.ticks:
                ax.plot([k - 0.03, k], [y, y], color="0.25", lw=1, zorder=1)
                ax.text(k - 0.05, y, label, ha="right", va="center", fontsize=8, zorder=4,
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
            ax.text(k, 1.07, axis.name + (" (log)" if axis.log else ""), ha="center", va="bottom",
                    fontsize=9.5, fontweight="bold" if k == len(axes) - 1 else None)
        ax.set(xlim=(-0.6, len(axes) - 0.6), ylim=(NA_POSITION - 0.06, 1.15))
        ax.axis("off")
        colorbar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02, shrink=0.85)
        colorbar.set_label(f"{metric} (best epoch)")
        ax.set_title(f"Top {len(trials)} trials by {metric}", pad=24)
    return (f"The {len(trials)} best trials over the {len(axes) - 1} searched parameters and {metric}; "
            "the thickest line is the best trial, n/a marks a parameter the trial's configuration lacks.")

