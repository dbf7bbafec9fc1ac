"""From class probabilities to decisions: the threshold a binary model calls the positive class
at, the lens challenge's TPR0 and TPR10, temperature scaling and the calibration error, and the
correction of a training prior that a sampling strategy moved.

The positive class of a binary task is class 1, the second class name in order: ``1`` of the
Bologna set's ``is_lens`` column. Every function takes probabilities ``(N, C)`` and integer
labels ``(N,)`` as NumPy arrays.

* ``choose_threshold(p, y, rule, counts)``: ``f1`` (the positive class's F1: purity and
  completeness of the lens sample together), ``youden`` (TPR - FPR: the ROC point farthest from
  chance, blind to the class ratio), ``accuracy``, or a number. Chosen on the validation split,
  each cut scored by its ``labels`` or by ``expected`` counts from a logistic fit.
* ``tpr_before_fp(y, scores, k)``: the largest true-positive rate of any threshold that lets
  fewer than ``k`` negatives through (Metcalf et al. 2019, A&A 625, A119: TPR0 is ``k = 1``,
  TPR10 is ``k = 10``).
* ``fit_temperature`` / ``calibrate``: one temperature ``T`` fitted on the validation split by
  minimum negative log-likelihood (Guo et al. 2017); ``softmax((log p + w) / T)``, ``w`` the
  prior correction.
* ``accuracy_f1_auc(p, y, predicted)``: accuracy, macro F1 and ROC AUC, the one computation of
  them that a trial's validation metrics and the final report's ``decision_metrics`` share.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

THRESHOLD_RULES = ("f1", "youden", "accuracy")
THRESHOLD_COUNTS = ("expected", "labels")  # how a rule counts each cut (choose_threshold's ``counts``)
BALANCING = ("oversample", "undersample", "weighted")  # sampling strategies that train on equal classes
TEMPERATURE_RANGE = (0.05, 20.0)
# Below this many negatives, TPR0 and TPR10 say little: the challenge counted ~70,000.
FEW_NEGATIVES = 1000


def _log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, 1e-12, 1.0))


def prior_log_weights(sampling: str, train_labels: np.ndarray, num_classes: int,
                      class_weights: np.ndarray | None = None) -> np.ndarray:
    """Log-weights that undo what training did to the class prior. A balancing sampling strategy:
    a model trained on equal classes estimates ``p(c | x)`` under a uniform prior; adding
    ``log prior(c)`` (the training split's class frequencies) to its log-probabilities restores
    the set's own prior. Class weights in the loss (``focal_alpha``): a cross-entropy weighted by
    ``w_c`` is minimised by ``p(c | x)`` proportional to ``w_c p(c | x)``, undone by subtracting
    ``log w_c`` (exact for cross-entropy; the focal term reshapes confidences, not the prior,
    so the same correction is the first-order one there); a class of weight 0 is left as it is.
    Zeros when neither moved the prior."""
    out = np.zeros(num_classes)
    if sampling in BALANCING:
        counts = np.bincount(np.asarray(train_labels), minlength=num_classes).astype(float)
        out = np.log(np.maximum(counts, 1.0) / counts.sum())
    if class_weights is not None:
        weights = np.asarray(class_weights, dtype=float)
        positive = weights > 0
        scale = weights[positive].mean() if positive.any() else 1.0
        out = out - np.where(positive, np.log(np.where(positive, weights, 1.0) / scale), 0.0)
    return out


def calibrate(probabilities: np.ndarray, temperature: float = 1.0,
              log_weights: np.ndarray | None = None) -> np.ndarray:
    """``softmax((log p + log_weights) / temperature)``: prior-corrected, then temperature-scaled."""
    logits = _log(probabilities)
    if log_weights is not None:
        logits = logits + log_weights
    return softmax(logits / temperature, axis=1)


def nll(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    return float(-_log(probabilities[np.arange(len(labels)), labels]).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in :data:`TEMPERATURE_RANGE` that minimises the negative log-likelihood of
    ``labels`` under ``softmax(log p / T)`` (1.0 when there is nothing to fit)."""
    labels = np.asarray(labels)
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return 1.0
    logits, rows = _log(probabilities), np.arange(len(labels))

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / math.exp(log_t), axis=1)[rows, labels].mean())

    low, high = map(math.log, TEMPERATURE_RANGE)
    found = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    # Keep T = 1 unless fitting helps: a flat likelihood is no reason to move.
    return float(math.exp(found.x)) if found.fun < loss(0.0) - 1e-9 else 1.0


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, list]:
    """The reliability diagram's bins over the top-class confidence: per bin its lower edge, mean
    confidence, accuracy and count (empty bins are left out)."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = {"lower": [], "confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        inside = which == b
        if inside.any():
            out["lower"].append(float(edges[b]))
            out["confidence"].append(float(confidence[inside].mean()))
            out["accuracy"].append(float(correct[inside].mean()))
            out["count"].append(int(inside.sum()))
    return out


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over the bins."""
    table = reliability(probabilities, labels, bins)
    total = sum(table["count"])
    if not total:
        return math.nan
    return float(sum(n * abs(c - a) for n, c, a in zip(table["count"], table["confidence"], table["accuracy"]))
                 / total)


def tpr_before_fp(labels: np.ndarray, scores: np.ndarray, false_positives: int) -> float | None:
    """The largest true-positive rate of any threshold that lets fewer than ``false_positives``
    negatives score above it (ties with a negative count against the positive). None without
    positives."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    positive, negative = scores[labels == 1], np.sort(scores[labels == 0])[::-1]
    if len(positive) == 0:
        return None
    if len(negative) < false_positives:
        return 1.0
    return float((positive > negative[false_positives - 1]).mean())


def _threshold_table(scores: np.ndarray, positive: np.ndarray):
    """Each distinct score (descending) as a threshold ``score >= t``: its TP and FP counts, with
    ``positive`` each image's (counted or expected) share of the positive class."""
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], positive[order]
    tp, fp = np.cumsum(truth), np.cumsum(1.0 - truth)
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the last position of each distinct score
    return ranked[last], tp[last], fp[last]


def logistic_fit(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Platt's (1999) scaling: each image's probability of class 1 from a logistic regression of
    ``labels`` on the log-odds of ``scores`` (scikit-learn's, lightly regularised: ``C = 100``)."""
    from sklearn.linear_model import LogisticRegression

    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    log_odds = np.log(clipped / (1 - clipped))[:, None]
    return LogisticRegression(C=100.0).fit(log_odds, labels).predict_proba(log_odds)[:, 1]


def choose_threshold(probabilities: np.ndarray, labels: np.ndarray, rule: str | float,
                     counts: str = "labels") -> float:
    """The probability of class 1 from which a binary model calls class 1, by ``rule`` (see the
    module docstring) on these (validation) predictions.

    ``counts``: ``labels`` scores each threshold by the labels it gets right and wrong;
    ``expected`` by expected counts, each image counting ``q`` of a positive and ``1 - q`` of a
    negative, ``q`` its probability under a logistic fit of the labels on the scores
    (:func:`logistic_fit`; Nan et al. 2012's plug-in rule), which moves smoothly where the
    counted optimum of a small split jumps with each image near the edge.

    Of equally scoring thresholds the middle one is taken, placed halfway between the chosen
    score and the next lower one: its decisions on these predictions are the chosen ones, and
    new images near the edge are not decided by a tie. A number is returned as it is; 0.5 when a
    class is missing from ``labels``.
    """
    if not isinstance(rule, str):
        return float(rule)
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule {rule!r}: known {', '.join(THRESHOLD_RULES)} or a number")
    if counts not in THRESHOLD_COUNTS:
        raise ValueError(f"threshold counts {counts!r}: known {', '.join(THRESHOLD_COUNTS)}")
    scores, labels = probabilities[:, 1], np.asarray(labels)
    if (labels == 1).all() or (labels != 1).all():
        return 0.5
    positive = logistic_fit(scores, labels == 1) if counts == "expected" else (labels == 1).astype(float)
    positives, negatives = positive.sum(), (1.0 - positive).sum()
    values, tp, fp = _threshold_table(scores, positive)
    if rule == "f1":
        score = 2 * tp / (tp + fp + positives)
    elif rule == "youden":
        score = tp / positives - fp / negatives
    else:
        score = (tp + negatives - fp) / (positives + negatives)
    best = np.flatnonzero(np.isclose(score, score.max(), rtol=0, atol=1e-12))
    i = int(best[len(best) // 2])
    if i + 1 < len(values):
        return float((values[i] + values[i + 1]) / 2)
    return float(values[i])


def decide(probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Predicted classes: class 1 where its probability reaches ``threshold`` (binary, when
    given), else the most probable class."""
    if threshold is not None and probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= threshold).astype(np.int64)
    return probabilities.argmax(1)


def accuracy_f1_auc(probabilities: np.ndarray, labels: np.ndarray, predicted: np.ndarray, *,
                    every_class: bool) -> tuple[float, float, float | None]:
    """Accuracy and macro F1 of the ``predicted`` classes, and the ROC AUC of ``probabilities``
    (binary: of class 1's probability; else one-vs-rest, macro over the classes).

    Args:
        every_class: The macro F1 averages over every class of ``probabilities``, one absent
            from both ``labels`` and ``predicted`` scoring 0 (the final report's); else over the
            classes that occur in either (scikit-learn's default; a trial's ``val_f1``).

    Returns:
        ``(accuracy, macro F1, AUC)``; the AUC is None when a class is missing from ``labels``:
        it is undefined then.
    """
    labels = np.asarray(labels)
    num_classes = probabilities.shape[1]
    classes = np.arange(num_classes)
    accuracy = float(accuracy_score(labels, predicted))
    f1 = float(f1_score(labels, predicted, average="macro", labels=classes if every_class else None,
                        zero_division=0))
    if len(np.unique(labels)) < num_classes:
        return accuracy, f1, None
    if num_classes == 2:
        return accuracy, f1, float(roc_auc_score(labels, probabilities[:, 1]))
    return accuracy, f1, float(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro",
                                             labels=classes))


def decision_metrics(probabilities: np.ndarray, labels: np.ndarray, threshold: float | None = None,
                     class_names: list[str] | None = None) -> dict:
    """Everything a split's predictions are judged by: accuracy, macro F1, precision and recall
    (of class 1 for a binary task, else macro), ROC AUC, the confusion matrix at the decisions;
    for a binary task also TPR0, TPR10 and the negatives they were counted on; the calibration
    error and negative log-likelihood."""
    labels = np.asarray(labels)
    num_classes = probabilities.shape[1]
    predicted = decide(probabilities, threshold)
    binary = num_classes == 2
    average = "binary" if binary else "macro"
    accuracy, f1_macro, auc = accuracy_f1_auc(probabilities, labels, predicted, every_class=True)
    out = {"n": int(len(labels)), "threshold": threshold if binary else None,
           "accuracy": accuracy, "f1_macro": f1_macro,
           "precision": float(precision_score(labels, predicted, average=average, zero_division=0,
                                              **({} if binary else {"labels": np.arange(num_classes)}))),
           "recall": float(recall_score(labels, predicted, average=average, zero_division=0,
                                        **({} if binary else {"labels": np.arange(num_classes)}))),
           "auc": auc, "nll": nll(probabilities, labels),
           "ece": expected_calibration_error(probabilities, labels)}
    if binary:
        negatives = int((labels == 0).sum())
        out.update(tpr0=tpr_before_fp(labels, probabilities[:, 1], 1),
                   tpr10=tpr_before_fp(labels, probabilities[:, 1], 10), negatives=negatives)
    out["confusion_matrix"] = confusion_matrix(labels, predicted, labels=np.arange(num_classes)).tolist()
    if class_names is not None:
        out["class_names"] = list(class_names)
    return out


def few_negatives_note(metrics: dict) -> str | None:
    """A line when TPR0 and TPR10 were counted on too few negatives to mean what the challenge's do."""
    negatives = metrics.get("negatives")
    if negatives is None or negatives >= FEW_NEGATIVES:
        return None
    return (f"note: TPR0 and TPR10 counted on {negatives} negatives (the lens challenge counted ~70,000): "
            f"one false positive is {100 / max(negatives, 1):.1f} % of them, so they are coarse here")
