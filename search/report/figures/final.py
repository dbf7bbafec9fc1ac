"""The final model on the test split: its ROC, confusion matrix and calibration, from the
predictions file, and its most confident mistakes, from the misclassified images."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.files import MISCLASSIFIED_FILE, PREDICTIONS_FILE
from search.report.figures.common import Skipped, require, saved_figure
from trainable.display import MANY_CLASSES, displayable

MISCLASSIFIED_GRID = 8  # at most 8 x 8 images


def read_predictions(folder: Path, summary: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """The test predictions and the class names, from the summary when its columns are there,
    else from the ``p_<class>`` columns."""
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
    """The final model's ROC on the test split, where it decides marked in a binary task;
    returns the caption."""
    frame, names = read_predictions(folder, summary)
    curves = roc_curves(frame, names)
    many = len(names) > MANY_CLASSES  # one grey curve a class, unlabelled; the worst named below
    with saved_figure(png, figsize=(5.2, 5.0)) as fig:
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
    """The final model's confusion matrix on the test split, counts and row fractions (a heat
    map alone for many classes); returns the caption."""
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    frame, names = read_predictions(folder, summary)
    counts = confusion_matrix(frame["true"], frame["predicted"], labels=names)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    if len(names) > MANY_CLASSES:
        return _confusion_heatmap(counts, fractions, names, len(frame), png)
    size = 3.2 + 0.55 * len(names)
    with saved_figure(png, figsize=(size + 1.2, size)) as fig:
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
    """The confusion matrix of many classes: fractions as colours only (numbers in
    so many cells are unreadable), every class ticked, and the most frequent confusions named in the caption."""
    with saved_figure(png, figsize=(9.6, 8.4)) as fig:
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
    """The final model's reliability diagram on the test split, with its expected calibration
    error; returns the caption."""
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
    with saved_figure(png, figsize=(5.2, 5.0)) as fig:
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


def plot_misclassified(folder: Path, summary: dict[str, Any], png: Path) -> str:
    """A grid of the test images the final model gets wrong most confidently; returns the caption."""
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
    with saved_figure(png, figsize=(width * columns, height * rows + 0.4)) as fig:
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
