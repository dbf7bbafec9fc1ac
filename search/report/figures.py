"""The figures of a search's report, each drawn from the results folder into one PNG.

Each ``plot_*`` function takes the results folder, its summary and the PNG to write, and returns
the figure's caption; it raises :class:`Skipped` with the reason when the results cannot give the
figure. The data behind each figure is prepared by a small function of its own, for the tests.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import matplotlib

matplotlib.use("Agg")  # files only, never a window: the driver may run where there is no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


from search.files import HISTORY_FILE, MISCLASSIFIED_FILE, PREDICTIONS_FILE, STUDY_FILE  # noqa: E402
from trainable.config import TrainConfig  # noqa: E402
from trainable.display import MANY_CLASSES, displayable  # noqa: E402
from trainable.metrics import label as metric_label  # noqa: E402

PARALLEL_TRIALS = 15
MISCLASSIFIED_GRID = 8  # at most 8 x 8 images
FANOVA_MIN_TRIALS = 3  # trials with a value; fANOVA's forest on fewer is a coin toss
PED_ANOVA_MIN_TRIALS = 2
FEW_TRIALS = 10  # below this, importances are flagged as indicative only
NA_POSITION = -0.14  # where a trial without a (conditional) parameter sits on its axis

STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "savefig.dpi": 150,
         "axes.spines.top": False, "axes.spines.right": False}


class Skipped(Exception):
    """A figure these results cannot give; its message replaces the figure in the report."""


@contextlib.contextmanager
def _figure(png: Path, **kwargs) -> Iterator[plt.Figure]:
    """A figure saved to ``png`` when the block ends without an error, and closed in any case."""
    fig = plt.figure(layout="constrained", **kwargs)
    try:
        yield fig
        fig.savefig(png, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)


def require(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise Skipped(f"no {name} in the results folder")
    return path


# Learning curves ---------------------------------------------------------------------------

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
    return pd.read_csv(require(folder, HISTORY_FILE), dtype={"trial": str})


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


def plot_learning_curves(folder: Path, summary: dict[str, Any], png: Path) -> str:
    curves = learning_curves(read_history(folder), summary)
    metric, asha = summary["metric"], summary.get("scheduler") == "asha"
    stop_label = "stopped by ASHA" if asha else "stopped early"
    budget = max([int(summary.get("epochs") or 1)] + [int(c.epochs.max()) for c in curves if len(c.epochs)])
    with _figure(png, figsize=(8.5, 4.6)) as fig:
        ax = fig.add_subplot()
        rungs = sorted({int(c.epochs[-1]) for c in curves if c.status == "stopped" and len(c.epochs)})
        for epoch in rungs:
            ax.axvline(epoch, color="0.88", lw=1, zorder=0)
        for curve in sorted(curves, key=lambda c: c.best):  # the best one drawn last, on top
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
        counts = {s: sum(c.status == s for c in curves) for s in LINE_STYLES}
        handles = []
        for status, n in counts.items():
            if n:  # a line with its end marker in the middle, as legends draw them
                end = END_MARKERS.get(status)
                marker = {} if end is None else {"marker": end["marker"], "mfc": end["color"],
                                                 "mec": end["color"], "ms": end["ms"]}
                line = {k: v for k, v in LINE_STYLES[status].items() if k != "alpha"}
                handles.append(Line2D([], [], lw=1.5, **line, **marker,
                                      label=f"{stop_label if status == 'stopped' else status.replace('_', ' ')} ({n})"))
        best = next((c for c in curves if c.best), None)
        if best is not None:
            handles.append(Line2D([], [], color="black", lw=2.4, marker="*", ms=11, mfc="gold",
                                  label=f"best trial {best.trial}"))
        if rungs and asha:
            handles.append(Line2D([], [], color="0.88", lw=3, label="ASHA rungs (stop epochs)"))
        on = summary.get("train_on")
        if on and best is not None and best.trial == str(on.get("trial_id")):  # search.train_on
            ax.axvline(on["from_epoch"] + 0.5, color="black", ls=":", lw=1, zorder=1)
            handles.append(Line2D([], [], color="black", ls=":", lw=1,
                                  label=f"the best trained on alone after epoch {on['from_epoch']}"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set(xlabel="epoch", ylabel=metric_label(metric), xlim=(0.8, budget + 0.2),
               title=f"Learning curves of {len(curves)} trials, search {summary.get('name', '')}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color="0.93")
    stopped = counts["stopped"]
    text = (f"{metric} on the validation split after every epoch; {stopped} trial(s) {stop_label} "
            f"(orange dots, at the rungs' epochs), the best trial in black, its best epoch starred."
            if stopped else f"{metric} on the validation split after every epoch; the best trial in black.")
    if summary.get("train_on"):
        text += (f" After epoch {summary['train_on']['from_epoch']} (dotted) the best trial trained on alone "
                 f"on the node's resources (search.train_on).")
    return text


# Parameter importances ---------------------------------------------------------------------

@dataclass
class Importances:
    values: dict[str, float]  # parameter -> importance, summing to 1, most important first
    method: str  # fANOVA or PED-ANOVA
    n_trials: int  # the trials they come from
    left_out: list[str]  # the study's parameters not assessed (fANOVA: not set in every trial)
    epoch: int | None = None  # the first rung's epoch the values are from; None: complete trials' own


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's info lines and warnings (experimental arguments, few trials) held back, and its
    verbosity restored after: the driver calling this has its own."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def load_study(path: Path, name: str | None = None):
    """The Optuna study in a journal file, as an in-memory copy without its diverged trials.

    The journal is read from a copy: opening one appends to it, and the results folder may be
    read-only. Diverged trials hold sentinel values (0 AUC, infinite loss), not results: left out.
    """
    import optuna

    with tempfile.TemporaryDirectory() as scratch, _quiet_optuna():
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(copy)))
        names = [s.study_name for s in storage.get_all_studies()]
        if not names:
            raise Skipped(f"{path.name} holds no study")
        study = optuna.load_study(study_name=name if name in names else names[0], storage=storage)
        memory = optuna.create_study(directions=study.directions)
        memory.add_trials([t for t in study.trials if not t.user_attrs.get("diverged")
                           and all(math.isfinite(v) for v in (t.values or []))])
    return memory


def first_rung_study(study):
    """Every COMPLETE or PRUNED trial's value at the first rung, each as a COMPLETE trial of a new
    in-memory study, and the rung's epoch; ``(None, None)`` when no trial reported per-epoch values.

    ASHA completes about one trial in 27: the rung every trial reached (the smallest last-reported
    step, steps being epochs) compares them all, on the same budget.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    def by_epoch(trial) -> dict[int, float]:
        # A multi-objective study has no intermediate values: the searcher kept them as a user
        # attribute (search.tune.searcher.EPOCH_VALUES), for the first objective, the metric.
        kept = trial.user_attrs.get("epoch_values") or {}
        return dict(trial.intermediate_values) or {int(k): float(v) for k, v in kept.items()}

    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    reported = [(t, by_epoch(t)) for t in finished]
    reported = [(t, values) for t, values in reported if values]
    if not reported:
        return None, None
    epoch = min(max(values) for _, values in reported)
    rung = optuna.create_study(direction=study.directions[0])
    rung.add_trials([create_trial(params=t.params, distributions=t.distributions, value=values[epoch])
                     for t, values in reported if math.isfinite(values.get(epoch, math.nan))])
    return rung, epoch


def param_importances(study) -> Importances:
    """Parameter importances on every trial's value at the first rung (:func:`first_rung_study`),
    or on the COMPLETE trials' values when no trial reported per-epoch values: fANOVA (seed 0), or
    PED-ANOVA when fANOVA cannot tell (too few trials, no parameter present in every trial, an error).

    Raises:
        Skipped: neither can, with the reason.
    """
    from optuna.trial import TrialState

    rung, epoch = first_rung_study(study)
    if rung is None and len(study.directions) > 1:
        raise Skipped("a multi-objective study whose trials kept no per-epoch values")
    trials = (rung or study).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    which = f"trial(s) at epoch {epoch} (the first rung)" if rung else "complete trial(s)"
    if len({t.value for t in trials}) < 2:
        raise Skipped(f"{len(trials)} {which} with {len({t.value for t in trials})} distinct "
                      "value(s): too few for parameter importances")
    seen = list(dict.fromkeys(k for t in study.get_trials(deepcopy=False) for k in t.params))
    values, method, problems = _evaluate(rung or study, len(trials))
    if values is None:
        raise Skipped(f"no parameter importances from {len(trials)} {which}: " + "; ".join(problems))
    return Importances(values, method, len(trials), [k for k in seen if k not in values], epoch)


def _evaluate(study, n_trials: int) -> tuple[dict[str, float] | None, str | None, list[str]]:
    """fANOVA's normalized importances on ``study``'s COMPLETE trials, else PED-ANOVA's:
    ``(values, method, [])``, or ``(None, None, what went wrong with each)``."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    problems = []
    for method, evaluator, least in (("fANOVA", FanovaImportanceEvaluator(seed=0), FANOVA_MIN_TRIALS),
                                     ("PED-ANOVA", PedAnovaImportanceEvaluator(), PED_ANOVA_MIN_TRIALS)):
        if n_trials < least:
            problems.append(f"{method} needs {least} trials")
            continue
        try:
            with _quiet_optuna():  # normalize=False, to see an all-zero result, is experimental
                raw = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=False)
        except Exception as err:  # any failure here means: try the next evaluator
            problems.append(f"{method} failed ({type(err).__name__}: {err})")
            continue
        total = sum(float(v) for v in raw.values())
        if not raw or not math.isfinite(total) or total <= 0:
            problems.append(f"{method} found no parameter to assess" if not raw
                            else f"{method} cannot tell the parameters apart")
            continue
        return dict(sorted(((k, float(v) / total) for k, v in raw.items()), key=lambda kv: -kv[1])), method, []
    return None, None, problems


def plot_importance(folder: Path, summary: dict[str, Any], png: Path) -> str:
    path = require(folder, STUDY_FILE)
    found = param_importances(load_study(path, summary.get("name")))
    names, values = list(found.values)[::-1], list(found.values.values())[::-1]
    which = (f"{found.n_trials} trials at epoch {found.epoch} (the first rung)" if found.epoch is not None
             else f"{found.n_trials} complete trials")
    with _figure(png, figsize=(6.5, 1.1 + 0.38 * len(names))) as fig:
        ax = fig.add_subplot()
        bars = ax.barh(names, values, color="tab:blue", height=0.6)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=9)
        ax.set(xlabel="importance (normalized to sum 1)", xlim=(0, max(values) * 1.18),
               title=f"{found.method} importance for {summary['metric']}\n{which}")
    caption = f"{found.method} on the {summary['metric']} of the Optuna study's {which}"
    if found.epoch is not None:
        caption += ", the epoch every trial reached"
    if found.method == "PED-ANOVA":
        caption += " (fANOVA could not run on them)"
    if found.left_out:
        caption += f"; not assessed (not set in every trial): {', '.join(found.left_out)}"
    if found.n_trials < FEW_TRIALS:
        caption += f". Fewer than {FEW_TRIALS} trials: indicative only"
    return caption + "."


# Parallel coordinates ----------------------------------------------------------------------

@dataclass
class Axis:
    name: str
    positions: list[float]  # one per trial, in [0, 1], or NA_POSITION when the trial lacks it
    ticks: list[tuple[float, str]]  # (position, label of the real value)
    log: bool = False


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    trials, axes = parallel_data(summary)
    metric, maximize = summary["metric"], summary.get("mode") == "max"
    values = np.array([t["best"] for t in trials])
    cmap = plt.get_cmap("viridis" if maximize else "viridis_r")
    norm = plt.Normalize(values.min(), values.max() if values.max() > values.min() else values.min() + 1e-9)
    with _figure(png, figsize=(max(6.5, 1.45 * len(axes) + 1.5), 4.8)) as fig:
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


# Several objectives: the Pareto front ------------------------------------------------------

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
    trials, front, costs = pareto_data(summary)
    metric, picked = summary["metric"], (summary.get("pick") or {}).get("trial_id")
    backbones = sorted({str((t.get("config") or {}).get("backbone", "?")) for t in trials})
    colours = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(backbones)}
    with _figure(png, figsize=(5.6 * len(costs) + 0.6, 4.4)) as fig:
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


# Test split: ROC and confusion matrix ------------------------------------------------------

def read_predictions(folder: Path, summary: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_csv(require(folder, PREDICTIONS_FILE), dtype={"true": str, "predicted": str})
    names = [str(c) for c in ((summary.get("test") or {}).get("class_names") or [])]
    if not names or not all(f"p_{c}" in frame for c in names):
        names = [c[2:] for c in frame.columns if c.startswith("p_")]
    if len(names) < 2:
        raise Skipped(f"{PREDICTIONS_FILE} has fewer than two class-probability columns")
    return frame, names


def roc_curves(frame: pd.DataFrame,
               class_names: list[str]) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """``(label, false positive rates, true positive rates, AUC)``: binary, one curve for the
    second (positive) class; multi-class, one-vs-rest per class present, then their macro average.

    The macro average's curve is the mean of the per-class curves, but its AUC is the mean of the
    per-class AUCs: scikit-learn's one-vs-rest macro ROC AUC, the number ``summary.json`` holds
    (the area under the averaged curve is another, slightly different number).
    """
    from sklearn.metrics import auc, roc_curve

    positives = class_names[1:] if len(class_names) == 2 else class_names
    curves = []
    for name in positives:
        truth = (frame["true"] == name).to_numpy()
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, frame[f"p_{name}"].to_numpy(float))
        label = f"class {name}" + (" vs rest" if len(class_names) > 2 else "")
        curves.append((label, fpr, tpr, auc(fpr, tpr)))
    if not curves:
        present = sorted(frame["true"].unique())
        raise Skipped(f"the test split holds only class {', '.join(present)}: no ROC curve")
    if len(class_names) > 2 and len(curves) > 1:
        grid = np.unique(np.concatenate([c[1] for c in curves]))
        mean = np.mean([np.interp(grid, fpr, tpr) for _, fpr, tpr, _ in curves], axis=0)
        curves.append(("macro average", grid, mean, float(np.mean([c[3] for c in curves]))))
    return curves


def plot_roc(folder: Path, summary: dict[str, Any], png: Path) -> str:
    frame, names = read_predictions(folder, summary)
    curves = roc_curves(frame, names)
    many = len(names) > MANY_CLASSES  # one grey curve a class, unlabelled; the worst named below
    with _figure(png, figsize=(5.2, 5.0)) as fig:
        ax = fig.add_subplot()
        for k, (label, fpr, tpr, area) in enumerate(curves):
            macro = label == "macro average"
            text = (f"{label} (AUC = {area:.3f},\nmean of one-vs-rest AUCs)" if macro
                    else f"{label} (AUC = {area:.3f})")
            if many and not macro:
                ax.plot(fpr, tpr, lw=0.6, color="0.65", alpha=0.6,
                        label=f"each class vs rest ({len(curves) - 1} curves)" if k == 0 else None)
                continue
            ax.plot(fpr, tpr, lw=2.2 if macro or len(curves) == 1 else 1.5, ls="--" if macro else "-",
                    color="black" if macro else f"C{k}", label=text)
        threshold = (summary.get("test") or {}).get("threshold")
        if len(names) == 2:  # where the model's decisions sit on the curve
            positive, truth = names[1], frame["true"] == names[1]
            chosen = frame["predicted"] == positive
            ax.plot(chosen[~truth].mean(), chosen[truth].mean(), "o", color="tab:red", ms=7,
                    label="argmax decision" if threshold is None else f"decision at threshold {threshold:.3g}")
        ax.plot([0, 1], [0, 1], ls=":", color="0.5", lw=1, label="chance (AUC = 0.5)")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(-0.01, 1.01),
               ylim=(-0.01, 1.01), aspect="equal", title=f"ROC, final model, test split (n = {len(frame)})")
        ax.legend(loc="lower right")
        ax.grid(color="0.93")
    kind = f"positive class {names[1]}" if len(names) == 2 else "each class against the rest"
    caption = f"The final model's ROC on the {len(frame)} test images ({kind})."
    test = summary.get("test") or {}
    if len(names) == 2 and test.get("tpr0") is not None:
        caption += (f" The dot is where it decides (threshold {threshold:.3g}, chosen on the validation split)."
                    if threshold is not None else "")
        caption += (f" TPR0 {test['tpr0']:.3f} and TPR10 {test['tpr10']:.3f}: the lenses found before the first "
                    f"and the tenth false positive, of {test.get('negatives')} negatives.")
    if curves[-1][0] == "macro average":
        caption += (" The dashed curve averages the classes' curves; its AUC is the mean of the "
                    "one-vs-rest AUCs (the macro ROC AUC of the summary), not the area under it.")
        if len(curves) - 1 < len(names):  # sklearn's is undefined (NaN) with a class missing
            caption += f" Only {len(curves) - 1} of the {len(names)} classes are in the test split."
    if many:
        worst = sorted(curves[:-1], key=lambda c: c[3])[:3]
        caption += " The hardest classes: " + ", ".join(
            f"{label.removeprefix('class ').removesuffix(' vs rest')} (AUC {area:.3f})" for label, _, _, area in worst) + "."
    return caption


def plot_confusion_matrix(folder: Path, summary: dict[str, Any], png: Path) -> str:
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    frame, names = read_predictions(folder, summary)
    counts = confusion_matrix(frame["true"], frame["predicted"], labels=names)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    if len(names) > MANY_CLASSES:
        return _confusion_heatmap(counts, fractions, names, len(frame), png)
    size = 3.2 + 0.55 * len(names)
    with _figure(png, figsize=(size + 1.2, size)) as fig:
        ax = fig.add_subplot()
        display = ConfusionMatrixDisplay(fractions, display_labels=names)
        display.plot(ax=ax, cmap="Blues", values_format=".2f", colorbar=True, im_kw={"vmin": 0, "vmax": 1},
                     xticks_rotation=45 if max(len(n) for n in names) > 6 else "horizontal")
        for (i, j), text in np.ndenumerate(display.text_):
            text.set_text(f"{counts[i, j]}\n{fractions[i, j]:.0%}")
            text.set_fontsize(11 if len(names) <= 4 else 8)
        display.im_.colorbar.set_label("fraction of the true class (row)")
        ax.set(xlabel="predicted class", ylabel="true class",
               title=f"Confusion matrix, test split (n = {len(frame)})")
    return ("Counts, and the fraction of each true class (rows sum to 100%), for the final model deciding at "
            "its threshold on the test split.")


def _confusion_heatmap(counts: np.ndarray, fractions: np.ndarray, names: list[str], n: int, png: Path) -> str:
    """The confusion matrix of many classes: fractions as colours only (numbers in 10,000 cells are
    unreadable), every class ticked, and the most frequent confusions named in the caption."""
    with _figure(png, figsize=(9.6, 8.4)) as fig:
        ax = fig.add_subplot()
        image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        step = max(1, len(names) // 25)
        ticks = np.arange(0, len(names), step)
        ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=7)
        fig.colorbar(image, ax=ax, label="fraction of the true class (row)")
        ax.set(xlabel="predicted class", ylabel="true class", title=f"Confusion matrix, test split (n = {n})")
    off = counts.copy()
    np.fill_diagonal(off, 0)
    pairs = [(int(off[i, j]), names[i], names[j]) for i, j in zip(*np.unravel_index(np.argsort(-off, axis=None)[:5], off.shape))
             if off[i, j] > 0]
    ticked = f", every {step}th labelled" if step > 1 else ""
    caption = (f"The fraction of each true class (rows sum to 100%) for the final model deciding on the test "
               f"split, {len(names)} classes{ticked}.")
    if pairs:
        caption += " The most frequent confusions (true -> predicted, images): " + ", ".join(
            f"{t} -> {p} ({c})" for c, t, p in pairs) + "."
    return caption


def plot_reliability(folder: Path, summary: dict[str, Any], png: Path) -> str:
    from trainable.decide import expected_calibration_error, reliability

    frame, names = read_predictions(folder, summary)
    probabilities = frame[[f"p_{c}" for c in names]].to_numpy(float)
    index = {name: k for k, name in enumerate(names)}
    labels = frame["true"].map(index).to_numpy()
    if np.isnan(labels.astype(float)).any():
        raise Skipped(f"{PREDICTIONS_FILE} names a class the model does not have")
    labels = labels.astype(int)
    table = reliability(probabilities, labels, bins=10)
    ece = expected_calibration_error(probabilities, labels, bins=10)
    with _figure(png, figsize=(5.2, 5.0)) as fig:
        ax = fig.add_subplot()
        ax.bar(table["lower"], table["accuracy"], width=0.1, align="edge", color="C0", alpha=0.75,
               edgecolor="white", label="accuracy in the bin")
        ax.plot(table["confidence"], table["accuracy"], "o", color="C1", ms=4, label="bin's mean confidence")
        for x, y, n in zip(table["confidence"], table["accuracy"], table["count"]):
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
        ax.plot([0, 1], [0, 1], ls=":", color="0.4", lw=1, label="perfect calibration")
        ax.set(xlabel="confidence (probability of the predicted class)", ylabel="accuracy",
               xlim=(0, 1), ylim=(0, 1.05), aspect="equal",
               title=f"Reliability, final model, test split (ECE {ece:.3f})")
        ax.legend(loc="upper left")
    temperature = (summary.get("final") or {}).get("temperature")
    fitted = "" if temperature is None else f", after the temperature {temperature:.3g} fitted on the validation split"
    return (f"The final model's confidence against its accuracy on the {len(frame)} test images, in 10 bins "
            f"(the count above each){fitted}; the expected calibration error is the count-weighted gap, "
            f"{ece:.3f}. Bars under the diagonal: over-confident.")


# Misclassified images ----------------------------------------------------------------------

def plot_misclassified(folder: Path, summary: dict[str, Any], png: Path) -> str:
    with np.load(require(folder, MISCLASSIFIED_FILE)) as data:
        images, true, predicted = data["images"], data["true"], data["predicted"]
        confidence = data["confidence"] if "confidence" in data else np.full(len(images), np.nan)
    if len(images) == 0:
        raise Skipped("the final model misclassified no test image")
    shown = min(len(images), MISCLASSIFIED_GRID ** 2)
    columns = min(MISCLASSIFIED_GRID, math.ceil(math.sqrt(shown)))
    rows = math.ceil(shown / columns)
    # Long class names: true and predicted class on lines of their own, in a wider cell.
    titles = [f"{t} → {p}" if len(f"{t}{p}") <= 14 else f"{t}\n→ {p}" for t, p in zip(true, predicted)]
    longest = max(len(line) for title in titles[:shown] for line in title.splitlines())
    width, height = max(1.55, 0.085 * longest + 0.3), 1.7 + 0.16 * max(t.count("\n") for t in titles[:shown])
    with _figure(png, figsize=(width * columns, height * rows + 0.4)) as fig:
        grid = fig.subplots(rows, columns, squeeze=False)
        for k, ax in enumerate(grid.flat):
            ax.axis("off")
            if k >= shown:
                continue
            picture = displayable(images[k])
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, interpolation="nearest")
            ax.set_title(f"{titles[k]}\np = {confidence[k]:.2f}", fontsize=8)
        fig.suptitle(f"The final model's {shown} most confident mistakes on the test split", fontsize=11)
    return (f"The {shown} test images the final model gets wrong with the highest confidence: true → "
            "predicted class, and the predicted class' probability; each image scaled to its own range.")


