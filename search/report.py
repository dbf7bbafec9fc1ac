"""Figures and one HTML page that review a finished search, for the people who judge its results.

    python -m search.report results/lens_finding
    python -m search.report results/lens_finding --out /tmp/lens_finding_report

Reads the results folder a search leaves (see :mod:`search.results`) and writes, in
``RESULTS/report/`` unless ``--out`` says otherwise, one PNG per figure and ``report.html``, which
embeds them and needs nothing else (mail it, open it offline):

* ``learning_curves.png``: the validation metric of every trial per epoch, ASHA's stops marked;
* ``importance.png``: parameter importances (Optuna's fANOVA, else PED-ANOVA) on the study;
* ``parallel_coordinates.png``: the best trials' parameters, coloured by the metric;
* ``roc.png`` and ``confusion_matrix.png``: the best model on the test split;
* ``misclassified.png``: the test images the best model gets most confidently wrong.

A figure the results cannot give (no Optuna study after a grid search, too few complete trials for
importances, a single class in the test split) is replaced on the page by a note that says why.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import json
import math
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import matplotlib

matplotlib.use("Agg")  # files only, never a window: the driver may run where there is no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from trainable.errors import UserError, exit_on_user_error  # noqa: E402

# The files search.results writes, named here rather than imported: that module loads torch and
# timm, seconds of start-up a report does not need.
SUMMARY_FILE = "summary.json"
LEADERBOARD_FILE = "leaderboard.csv"
HISTORY_FILE = "history.csv"
STUDY_FILE = "optuna.journal"
PREDICTIONS_FILE = "test_predictions.csv"
MISCLASSIFIED_FILE = "misclassified.npz"
REPORT_FILE = "report.html"

LEADERBOARD_ROWS = 20
PARALLEL_TRIALS = 15
MISCLASSIFIED_GRID = 8  # at most 8 x 8 images
FANOVA_MIN_TRIALS = 3  # complete trials; fANOVA's forest on fewer is a coin toss
PED_ANOVA_MIN_TRIALS = 2
FEW_TRIALS = 10  # below this, importances are flagged as indicative only
NA_POSITION = -0.14  # where a trial without a (conditional) parameter sits on its axis

METRIC_LABELS = {"val_auc": "validation ROC AUC", "val_accuracy": "validation accuracy",
                 "val_f1": "validation macro F1", "val_loss": "validation loss"}
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "savefig.dpi": 150,
         "axes.spines.top": False, "axes.spines.right": False}


class Skipped(Exception):
    """A figure these results cannot give; its message replaces the figure in the report."""


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


@contextlib.contextmanager
def _figure(png: Path, **kwargs) -> Iterator[plt.Figure]:
    """A figure saved to ``png`` when the block ends without an error, and closed in any case."""
    fig = plt.figure(layout="constrained", **kwargs)
    try:
        yield fig
        fig.savefig(png, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)


def _require(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise Skipped(f"no {name} in the results folder")
    return path


# Learning curves ---------------------------------------------------------------------------

@dataclass
class Curve:
    """One trial's validation metric per epoch (finite, pre-divergence values only)."""

    trial: str
    status: str  # completed, stopped, diverged, error, or unknown (not in summary.json)
    epochs: np.ndarray
    values: np.ndarray
    best: bool
    diverged_at: int | None = None  # the epoch it diverged at

    @property
    def end_marker(self) -> str | None:
        """How the end of the line is marked: ``stopped`` (by ASHA), ``diverged``, ``error``, or
        None for a trial that ran its whole budget."""
        return self.status if self.status in ("stopped", "diverged", "error") else None


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


def read_history(folder: Path) -> pd.DataFrame:
    return pd.read_csv(_require(folder, HISTORY_FILE), dtype={"trial": str})


LINE_STYLES = {"completed": {"color": "tab:blue", "ls": "-", "alpha": 0.55},
               "stopped": {"color": "0.45", "ls": "-", "alpha": 0.6},
               "diverged": {"color": "tab:red", "ls": "--", "alpha": 0.7},
               "error": {"color": "tab:purple", "ls": ":", "alpha": 0.7},
               "unknown": {"color": "0.6", "ls": ":", "alpha": 0.6}}
END_MARKERS = {"stopped": {"marker": "o", "color": "tab:orange", "mec": "white", "ms": 5.5},
               "diverged": {"marker": "X", "color": "tab:red", "mec": "white", "ms": 8},
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
            if curve.best and len(curve.values):
                at = int(np.argmax(curve.values) if summary.get("mode") == "max" else np.argmin(curve.values))
                ax.plot(curve.epochs[at], curve.values[at], marker="*", ms=13, color="gold", mec="black",
                        ls="none", zorder=5)
        counts = {s: sum(c.status == s for c in curves) for s in LINE_STYLES}
        handles = []
        for status, n in counts.items():
            if n:  # a line with its end marker in the middle, as legends draw them
                end = END_MARKERS.get(status)
                marker = {} if end is None else {"marker": end["marker"], "mfc": end["color"],
                                                 "mec": end["color"], "ms": end["ms"]}
                line = {k: v for k, v in LINE_STYLES[status].items() if k != "alpha"}
                handles.append(Line2D([], [], lw=1.5, **line, **marker,
                                      label=f"{stop_label if status == 'stopped' else status} ({n})"))
        best = next((c for c in curves if c.best), None)
        if best is not None:
            handles.append(Line2D([], [], color="black", lw=2.4, marker="*", ms=11, mfc="gold",
                                  label=f"best trial {best.trial}"))
        if rungs and asha:
            handles.append(Line2D([], [], color="0.88", lw=3, label="ASHA rungs (stop epochs)"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set(xlabel="epoch", ylabel=metric_label(metric), xlim=(0.8, budget + 0.2),
               title=f"Learning curves of {len(curves)} trials, search {summary.get('name', '')}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color="0.93")
    stopped = counts["stopped"]
    return (f"{metric} on the validation split after every epoch; {stopped} trial(s) {stop_label} "
            f"(orange dots, at the rungs' epochs), the best trial in black, its best epoch starred."
            if stopped else f"{metric} on the validation split after every epoch; the best trial in black.")


# Parameter importances ---------------------------------------------------------------------

@dataclass
class Importances:
    values: dict[str, float]  # parameter -> importance, summing to 1, most important first
    method: str  # fANOVA or PED-ANOVA
    n_trials: int  # the complete trials they come from
    left_out: list[str]  # the study's parameters not assessed (fANOVA: not set in every complete trial)


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


def param_importances(study) -> Importances:
    """Parameter importances on the study's COMPLETE trials: fANOVA (seed 0), or PED-ANOVA when
    fANOVA cannot tell (too few trials, no parameter present in every trial, an error).

    Raises:
        Skipped: neither can, with the reason.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len({t.value for t in complete}) < 2:
        raise Skipped(f"{len(complete)} complete trial(s) with {len({t.value for t in complete})} distinct "
                      "value(s): too few for parameter importances")
    seen = list(dict.fromkeys(k for t in study.get_trials(deepcopy=False) for k in t.params))
    problems = []
    for method, evaluator, least in (("fANOVA", FanovaImportanceEvaluator(seed=0), FANOVA_MIN_TRIALS),
                                     ("PED-ANOVA", PedAnovaImportanceEvaluator(), PED_ANOVA_MIN_TRIALS)):
        if len(complete) < least:
            problems.append(f"{method} needs {least} complete trials, the study has {len(complete)}")
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
        values = dict(sorted(((k, float(v) / total) for k, v in raw.items()), key=lambda kv: -kv[1]))
        return Importances(values, method, len(complete), [k for k in seen if k not in values])
    raise Skipped("no parameter importances: " + "; ".join(problems))


def plot_importance(folder: Path, summary: dict[str, Any], png: Path) -> str:
    path = _require(folder, STUDY_FILE)
    found = param_importances(load_study(path, summary.get("name")))
    names, values = list(found.values)[::-1], list(found.values.values())[::-1]
    with _figure(png, figsize=(6.5, 0.9 + 0.38 * len(names))) as fig:
        ax = fig.add_subplot()
        bars = ax.barh(names, values, color="tab:blue", height=0.6)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=9)
        ax.set(xlabel="importance (normalized to sum 1)", xlim=(0, max(values) * 1.18),
               title=f"{found.method} importance for {summary['metric']} ({found.n_trials} complete trials)")
    caption = f"{found.method} on the {found.n_trials} complete trials of the Optuna study"
    if found.method == "PED-ANOVA":
        caption += " (fANOVA could not run on them)"
    if found.left_out:
        caption += f"; not assessed (not set in every complete trial): {', '.join(found.left_out)}"
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parallel_axis(name: str, values: list[Any]) -> Axis:
    """One axis: numbers scaled to [0, 1] (log when positive and spanning over a decade) with
    ticks in real values; anything else as evenly spaced categories. None means absent."""
    present = [v for v in values if v is not None]
    na = [(NA_POSITION, "n/a")] if len(present) < len(values) else []
    if present and all(_is_number(v) for v in present):
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
    """The ``top`` best trials with a value (best first) and one axis per searched parameter,
    then the metric."""
    trials = [t for t in summary.get("trials") or [] if _is_number(t.get("best"))]
    if len(trials) < 2:
        raise Skipped(f"{len(trials)} trial(s) with a value: nothing to compare")
    params = searched_parameters(summary.get("trials") or [])
    if not params:
        raise Skipped("no parameter varies across the trials")
    trials.sort(key=lambda t: -t["best"] if summary.get("mode") == "max" else t["best"])
    trials = trials[:top]
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


# Test split: ROC and confusion matrix ------------------------------------------------------

def read_predictions(folder: Path, summary: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_csv(_require(folder, PREDICTIONS_FILE), dtype={"true": str, "predicted": str})
    names = [str(c) for c in ((summary.get("test") or {}).get("class_names") or [])]
    if not names or not all(f"p_{c}" in frame for c in names):
        names = [c[2:] for c in frame.columns if c.startswith("p_")]
    if len(names) < 2:
        raise Skipped(f"{PREDICTIONS_FILE} has fewer than two class-probability columns")
    return frame, names


def roc_curves(frame: pd.DataFrame,
               class_names: list[str]) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """``(label, false positive rates, true positive rates, AUC)``: binary, one curve for the
    second (positive) class; multi-class, one-vs-rest per class present, then their macro average."""
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
        curves.append(("macro average", grid, mean, auc(grid, mean)))
    return curves


def plot_roc(folder: Path, summary: dict[str, Any], png: Path) -> str:
    frame, names = read_predictions(folder, summary)
    curves = roc_curves(frame, names)
    with _figure(png, figsize=(5.2, 5.0)) as fig:
        ax = fig.add_subplot()
        for k, (label, fpr, tpr, area) in enumerate(curves):
            macro = label == "macro average"
            ax.plot(fpr, tpr, lw=2.2 if macro or len(curves) == 1 else 1.5, ls="--" if macro else "-",
                    color="black" if macro else f"C{k}", label=f"{label} (AUC = {area:.3f})")
        if len(names) == 2:  # where the model's argmax decisions sit on the curve
            positive, truth = names[1], frame["true"] == names[1]
            chosen = frame["predicted"] == positive
            ax.plot(chosen[~truth].mean(), chosen[truth].mean(), "o", color="tab:red", ms=7,
                    label="argmax decision")
        ax.plot([0, 1], [0, 1], ls=":", color="0.5", lw=1, label="chance (AUC = 0.5)")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(-0.01, 1.01),
               ylim=(-0.01, 1.01), aspect="equal", title=f"ROC, best model, test split (n = {len(frame)})")
        ax.legend(loc="lower right")
        ax.grid(color="0.93")
    kind = f"positive class {names[1]}" if len(names) == 2 else "each class against the rest"
    return f"The best model's ROC on the {len(frame)} test images ({kind})."


def plot_confusion_matrix(folder: Path, summary: dict[str, Any], png: Path) -> str:
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    frame, names = read_predictions(folder, summary)
    counts = confusion_matrix(frame["true"], frame["predicted"], labels=names)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
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
    return ("Counts, and the fraction of each true class (rows sum to 100%), for the best model on the "
            "test split.")


# Misclassified images ----------------------------------------------------------------------

def displayable(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, 3) picture in [0, 1]: the first channel, or RGB when there are three,
    scaled to the image's own min and max."""
    image = np.asarray(image, dtype=float)
    if image.ndim == 3:
        image = np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]
    low, high = np.nanmin(image), np.nanmax(image)
    return np.clip((image - low) / (high - low), 0, 1) if high > low else np.zeros_like(image)


def plot_misclassified(folder: Path, summary: dict[str, Any], png: Path) -> str:
    with np.load(_require(folder, MISCLASSIFIED_FILE)) as data:
        images, true, predicted = data["images"], data["true"], data["predicted"]
        confidence = data["confidence"] if "confidence" in data else np.full(len(images), np.nan)
    if len(images) == 0:
        raise Skipped("the best model misclassified no test image")
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
        fig.suptitle(f"The best model's {shown} most confident mistakes on the test split", fontsize=11)
    return (f"The {shown} test images the best model gets wrong with the highest confidence: true → "
            "predicted class, and the predicted class' probability; each image scaled to its own range.")


# The page ----------------------------------------------------------------------------------

@dataclass
class Figure:
    file: str
    title: str
    draw: Callable[[Path, dict, Path], str]  # (results folder, summary, PNG to write) -> caption


FIGURES = [
    Figure("learning_curves.png", "Learning curves", plot_learning_curves),
    Figure("importance.png", "Parameter importance", plot_importance),
    Figure("parallel_coordinates.png", "Best trials' parameters", plot_parallel_coordinates),
    Figure("roc.png", "ROC curve (test split)", plot_roc),
    Figure("confusion_matrix.png", "Confusion matrix (test split)", plot_confusion_matrix),
    Figure("misclassified.png", "Misclassified test images", plot_misclassified),
]

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 2em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
tr.best td { background: #fff6d5; font-weight: 600; }
.scroll { overflow-x: auto; } .muted { color: #666; }
figure { margin: 0.5em 0 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
.note { background: #fff8e6; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; color: #5c4400; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any) -> str:
    return f"{value:.4f}" if _is_number(value) else "-"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "-"
    return "-" if value is None or value == "" else str(value)


def header_html(summary: dict[str, Any]) -> str:
    """The search, its trials by status, the best trial and its configuration, the test metrics."""
    metric = summary.get("metric", "?")
    counts = summary.get("status_counts") or {}
    statuses = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none finished"
    facts = [("metric", f"{metric} ({summary.get('mode', '?')})"),
             ("search", f"{summary.get('algorithm', '?')}, scheduler {summary.get('scheduler', '?')}, "
                        f"{summary.get('epochs', '?')} epochs a trial at most"),
             ("trials", f"{summary.get('num_trials', len(summary.get('trials') or []))} ({statuses})"
                        + ("" if summary.get("complete", True) else "; the search stopped before all ended"))]
    best, test = summary.get("best_trial"), summary.get("test") or {}
    if best is not None:
        val = summary.get("best_val") or {}
        facts.append(("best trial", f"{best}: {metric} {_number(val.get(metric))} on the validation split "
                                    f"at epoch {val.get('epoch', '?')}"))
    else:
        facts.append(("best trial", "none: no trial reported a value"))
    if test:
        facts.append(("test split (best model)",
                      f"{test.get('n', '?')} images: accuracy {_number(test.get('accuracy'))}, "
                      f"macro F1 {_number(test.get('f1_macro'))}, ROC AUC {_number(test.get('auc'))}"))
    parts = [f"<h1>Search {_e(summary.get('name', ''))}</h1>", '<dl class="facts">']
    parts += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts]
    parts.append("</dl>")
    if summary.get("best_config"):
        rows = "".join(f'<tr><td class="text">{_e(k)}</td><td class="text">{_e(_cell(v))}</td></tr>'
                       for k, v in summary["best_config"].items())
        parts.append(f'<h2>Best configuration</h2><table><tr><th class="text">parameter</th>'
                     f'<th class="text">value</th></tr>{rows}</table>')
    return "\n".join(parts)


def leaderboard_html(folder: Path, summary: dict[str, Any]) -> str:
    """The leaderboard's first rows as a table, the best trial's row highlighted."""
    frame = pd.read_csv(_require(folder, LEADERBOARD_FILE), dtype={"trial": str})
    shown = frame.head(LEADERBOARD_ROWS)
    align = {c: "" if pd.api.types.is_numeric_dtype(shown[c]) else "text" for c in shown.columns}
    head = "".join(f'<th class="{align[c]}">{_e(c)}</th>' for c in shown.columns)
    body = []
    for row in shown.to_dict("records"):
        best = ' class="best"' if str(row.get("trial")) == str(summary.get("best_trial")) else ""
        cells = "".join(f'<td class="{align[c]}">{_e(_cell(None if pd.isna(v) else v))}</td>'
                        for c, v in row.items())
        body.append(f"<tr{best}>{cells}</tr>")
    more = (f'<p class="muted">The best {LEADERBOARD_ROWS} of {len(frame)} trials; all of them in '
            f'{LEADERBOARD_FILE}.</p>' if len(frame) > LEADERBOARD_ROWS else "")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>{more}'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _attempt(title: str, build: Callable[[], str]) -> tuple[str, bool]:
    """``build()`` and True, or a note saying why it could not be built and False."""
    try:
        return build(), True
    except Skipped as reason:
        return _note(f"{title}: {reason}"), False
    except Exception as err:  # a bug or a damaged file; the report never stops a search's end
        print(f"report: {title} not written: {type(err).__name__}: {err}", file=sys.stderr)
        return _note(f"{title} could not be written ({type(err).__name__}: {err})"), False


def figure_html(figure: Figure, folder: Path, summary: dict[str, Any], out: Path) -> tuple[str, bool]:
    """The figure embedded as a data URI with its caption (and True), or a note saying why there
    is none (and False)."""
    png = out / figure.file
    png.unlink(missing_ok=True)  # never a stale picture from an earlier report beside this one

    def build() -> str:
        caption = figure.draw(folder, summary, png)
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(figure.title)}" '
                f'data-file="{_e(figure.file)}"><figcaption>{_e(caption)}</figcaption></figure>')

    body, drawn = _attempt(figure.title, build)
    if not drawn:
        png.unlink(missing_ok=True)
    return f"<h2>{_e(figure.title)}</h2>\n{body}", drawn


def read_summary(folder: Path) -> dict[str, Any]:
    path = folder / SUMMARY_FILE
    if not path.is_file():
        raise UserError(f"{folder}: no {SUMMARY_FILE} here: not the results folder of a finished search "
                        "(results/<name>/)")
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot be read as JSON ({err})") from None
    if not isinstance(summary, dict) or "metric" not in summary:
        raise UserError(f"{path}: not a search summary (no metric)")
    return summary


def write_report(folder: Path, out: Path | None = None) -> Path:
    """Write the figures and ``report.html`` for a results folder.

    Args:
        folder: The results folder of a finished search (``results/<name>/``).
        out: Where to write; default ``folder/report/``.

    Returns:
        The path of ``report.html``. A figure that cannot be drawn becomes a note on the page, and
        no PNG.

    Raises:
        UserError: ``folder`` holds no readable ``summary.json``.
    """
    folder = Path(folder)
    summary = read_summary(folder)
    out = Path(out) if out is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        parts = [_attempt("Summary", lambda: header_html(summary))[0], "<h2>Leaderboard</h2>",
                 _attempt("Leaderboard", lambda: leaderboard_html(folder, summary))[0]]
        parts += [figure_html(figure, folder, summary, out)[0] for figure in FIGURES]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>Search {_e(summary.get("name", ""))}: report</title><style>{CSS}</style></head>\n'
            "<body>\n" + "\n".join(parts)
            + f'\n<p class="muted">Written from {_e(folder.resolve())}.</p>\n</body></html>\n')
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m search.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the results folder of a finished search (results/<name>/)")
    parser.add_argument("--out", type=Path, help="where to write the figures and report.html "
                                                 "(default FOLDER/report/)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = write_report(args.folder, args.out)
    missing = [f.file for f in FIGURES if not (path.parent / f.file).is_file()]
    print(f"report: {path}" + (f" (not drawn, see the notes there: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
