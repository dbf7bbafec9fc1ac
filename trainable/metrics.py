"""The metrics a search ranks trials by, each declared once: its direction, its label, its key in
:func:`trainable.decide.decision_metrics`, the value a diverged trial reports, and how far a
validation value moves by chance (one standard error).

Pure Python: the space check imports it before torch, and every stage after it (searcher, ASHA,
results, final stage, report) reads the same record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Metric:
    """One reported metric."""

    name: str  # as a trial reports it: "val_auc"
    mode: str  # "max" or "min": the one sensible direction
    label: str  # for figures and tables
    decision_key: str  # the same metric in trainable.decide.decision_metrics
    worst: float  # what a diverged trial reports

    @property
    def sign(self) -> int:
        """+1 where larger is better, -1 where smaller is."""
        return 1 if self.mode == "max" else -1


METRICS = {m.name: m for m in (
    Metric("val_auc", "max", "validation ROC AUC", "auc", 0.0),
    Metric("val_accuracy", "max", "validation accuracy", "accuracy", 0.0),
    Metric("val_f1", "max", "validation macro F1", "f1_macro", 0.0),
    Metric("val_tpr10", "max", "validation TPR10", "tpr10", 0.0),
    Metric("val_loss", "min", "validation loss", "nll", math.inf),
    Metric("train_loss", "min", "training loss", "nll", math.inf),
)}
SEARCHABLE = tuple(name for name in METRICS if name != "train_loss")  # what a trial may be ranked by


def metric(name: str) -> Metric:
    """The record of ``name``; KeyError for one no trial reports."""
    return METRICS[name]


def label(name: str) -> str:
    """The metric's label, or its name for one not in :data:`METRICS` (a cost, a custom key)."""
    return METRICS[name].label if name in METRICS else name


def diverged() -> dict[str, float]:
    """What a diverged trial reports: the worst value of every metric."""
    return {name: m.worst for name, m in METRICS.items()}


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's (1982) standard error of an ROC AUC measured on ``positives`` and
    ``negatives`` images."""
    if positives < 1 or negatives < 1:
        return math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc))
    return math.sqrt(max(variance, 0.0) / (positives * negatives))


def standard_error(name: str, value: float | None, labels: Sequence[int]) -> float | None:
    """How far a validation value of metric ``name`` on images labelled ``labels`` moves by
    chance, one standard error: Hanley and McNeil's for AUC (for several classes, the mean of the
    one-vs-rest ones, as the macro AUC is their mean), the binomial one for accuracy (F1 taken as
    one too) and for TPR10 (over the positives). None for a loss or an unknown metric."""
    labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    if value is None or not math.isfinite(value) or not labels:
        return None
    if name == "val_auc":
        classes = sorted(set(labels))
        ones = [1] if len(classes) == 2 else classes
        errors = [auc_standard_error(value, sum(v == c for v in labels), sum(v != c for v in labels)) for c in ones]
        return sum(errors) / len(errors)
    if name in ("val_accuracy", "val_f1"):
        return math.sqrt(max(value * (1 - value), 0.0) / len(labels))
    if name == "val_tpr10":  # a rate over the positives (binomial; the threshold's noise aside)
        positives = sum(v == 1 for v in labels)
        return math.sqrt(max(value * (1 - value), 0.0) / positives) if positives else None
    return None
