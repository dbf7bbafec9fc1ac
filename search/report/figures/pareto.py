"""The Pareto front of a search with several objectives: the metric against each cost, the trials
no other beats on all of them at once outlined, the final model's trial starred."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from search.report.figures.common import Skipped, is_number, saved_figure
from trainable.config import TrainConfig
from trainable.metrics import label as metric_label


def pareto_data(summary: dict[str, Any]) -> tuple[list[dict], set[str], list[str]]:
    """The trials with a value and every cost, the ids of the Pareto set (``summary['pareto']``,
    :func:`search.results.pareto.pareto_records`) and the cost objectives."""
    objectives = summary.get("objectives") or []
    if len(objectives) < 2:
        raise Skipped("a single-objective search: no Pareto front")
    costs = [o["metric"] for o in objectives[1:]]
    trials = [t for t in summary.get("trials") or [] if is_number(t.get("best"))
              and all(is_number((t.get("costs") or {}).get(c)) for c in costs)]
    if not trials:
        raise Skipped("no trial reported a value and its costs")
    return trials, {row["trial_id"] for row in summary.get("pareto") or []}, costs


def plot_pareto(folder: Path, summary: dict[str, Any], png: Path) -> str:
    """The metric against each cost, one panel a cost, the Pareto set outlined and named;
    returns the caption."""
    trials, front, costs = pareto_data(summary)
    metric, picked = summary["metric"], (summary.get("pick") or {}).get("trial_id")
    backbones = sorted({str((t.get("config") or {}).get("backbone", "?")) for t in trials})
    colours = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(backbones)}
    with saved_figure(png, figsize=(5.6 * len(costs) + 0.6, 4.4)) as fig:
        axes = fig.subplots(1, len(costs), squeeze=False)[0]
        for ax, cost in zip(axes, costs):
            for on_front in (False, True):  # the dominated faded, underneath
                shown = [t for t in trials if (t["trial_id"] in front) == on_front]
                ax.scatter([t["costs"][cost] for t in shown], [t["best"] for t in shown],
                           c=[colours[str((t.get("config") or {}).get("backbone", "?"))] for t in shown],
                           s=46 if on_front else 22, alpha=1.0 if on_front else 0.25,
                           edgecolors="black" if on_front else "none", linewidths=0.6, zorder=3 if on_front else 2)
            members = sorted((t for t in trials if t["trial_id"] in front), key=lambda t: t["costs"][cost])
            for t in members:  # the front's trials by name, to find in the Pareto set's table
                config = {**TrainConfig().to_dict(), **(t.get("config") or {})}
                shape = (f" (width {config['cnn_width']}, depth {config['cnn_depth']})"
                         if config.get("backbone") == "simple_cnn" else "")
                ax.annotate(t["trial_id"] + shape, (t["costs"][cost], t["best"]), xytext=(5, -10),
                            textcoords="offset points", fontsize=7.5, color="0.3")
            if len(costs) == 1 and len(members) > 1:  # in 2-D the front is a staircase
                ax.step([t["costs"][cost] for t in members], [t["best"] for t in members],
                        where="pre" if summary["objectives"][1]["mode"] == "max" else "post",
                        color="0.3", lw=1, zorder=1)
            chosen = next((t for t in trials if t["trial_id"] == picked), None)
            if chosen is not None:
                ax.scatter([chosen["costs"][cost]], [chosen["best"]], marker="*", s=260, facecolors="none",
                           edgecolors="crimson", linewidths=1.4, zorder=4)
            values = [t["costs"][cost] for t in trials]
            if min(values) > 0 and max(values) / min(values) > 10:
                ax.set_xscale("log")
            unit = {"throughput": "inference images / s (higher is cheaper)", "params": "parameters",
                    "flops": "FLOPs per image"}[cost]
            ax.set(xlabel=unit, ylabel=f"{metric_label(metric)} (best epoch)")
        handles = [Line2D([], [], ls="", marker="o", color=colours[b], label=b) for b in backbones]
        handles.append(Line2D([], [], ls="", marker="*", markersize=12, markerfacecolor="none",
                              markeredgecolor="crimson", label="the final model's trial"))
        axes[-1].legend(handles=handles, loc="best", frameon=False)
        fig.suptitle(f"{metric} against {', '.join(costs)}: {len(front)} of {len(trials)} trials on the Pareto front")
    return (f"Every trial with a value: the {len(front)} no other trial beats on {metric} and "
            f"{' and '.join(costs)} at once outlined and opaque{', joined' if len(costs) == 1 else ''}; the dominated "
            "ones faded. Colour: backbone. Star: the trial the final model is built on (final.pick).")

