"""Decisions from probabilities: threshold rules, TPR0/TPR10, temperature scaling, calibration
error and prior correction, on constructed scores."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from trainable.decide import (calibrate, choose_threshold, decide, decision_metrics, expected_calibration_error,
                              few_negatives_note, fit_temperature, nll, prior_log_weights, tpr_before_fp)


def binary(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    return np.stack([1 - scores, scores], axis=1)


# Positives 0.9, 0.85, 0.55; negatives 0.8, 0.6, 0.5, ... (3 against 8). Cuts, from the top:
#   >= 0.85: TP 2, FP 0 -> F1 0.8,  TPR - FPR 0.667, accuracy 10/11
#   >= 0.55: TP 3, FP 2 -> F1 0.75, TPR - FPR 0.75,  accuracy 9/11
CASE_SCORES = [0.9, 0.85, 0.55, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
CASE_LABELS = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("rule, expected", [("f1", 0.825), ("accuracy", 0.825), ("youden", 0.525)])
def test_threshold_rules_on_a_hand_worked_case(rule, expected):
    """F1 and accuracy keep the purer cut; Youden's index, blind to the class ratio, takes the
    third positive at the price of two false positives. The threshold lies halfway to the next
    lower score."""
    assert choose_threshold(binary(CASE_SCORES), np.array(CASE_LABELS), rule) == pytest.approx(expected)


@pytest.mark.parametrize("rule", ["f1", "youden", "accuracy"])
def test_threshold_rules_reach_their_maximum(rule):
    """On random scores with ties, the chosen threshold scores as well as any cut does, each
    measured independently with scikit-learn."""
    rng = np.random.default_rng(3)
    labels = (rng.random(300) < 0.3).astype(int)
    scores = np.round(np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1), 2)  # ties on purpose

    def measure(t):
        predicted = (scores >= t).astype(int)
        if rule == "f1":
            return f1_score(labels, predicted)
        if rule == "accuracy":
            return accuracy_score(labels, predicted)
        return predicted[labels == 1].mean() - predicted[labels == 0].mean()

    chosen = choose_threshold(binary(scores), labels, rule)
    best = max(measure(t) for t in np.unique(scores))
    assert measure(chosen) == pytest.approx(best)
    assert chosen not in set(scores.tolist())  # between two scores, not on one


def test_expected_counts_put_the_thresholds_where_calibrated_probabilities_do():
    """Scores that are calibrated probabilities (labels drawn with them): the logistic fit gives
    them back, and the expected-count rules land where decision theory puts them: accuracy at
    0.5, the positive class's F1 at half the best F1 (Lipton et al. 2014)."""
    rng = np.random.default_rng(5)
    scores = 1 / (1 + np.exp(-rng.normal(0.8, 2.0, 4000)))
    labels = (rng.random(4000) < scores).astype(int)
    assert choose_threshold(binary(scores), labels, "accuracy", counts="expected") == pytest.approx(0.5, abs=0.03)
    f1_threshold = choose_threshold(binary(scores), labels, "f1", counts="expected")
    best_f1 = max(f1_score(labels, (scores >= t).astype(int)) for t in np.linspace(0.05, 0.95, 91))
    assert f1_threshold == pytest.approx(best_f1 / 2, abs=0.03)
    # Scores on another scale (the logistic fit undoes a temperature): the same decisions.
    squashed = 1 / (1 + np.exp(-0.5 * np.log(scores / (1 - scores))))
    chosen = choose_threshold(binary(squashed), labels, "accuracy", counts="expected")
    assert ((squashed >= chosen) == (scores >= 0.5)).mean() > 0.99


@pytest.mark.parametrize("rule", ["f1", "accuracy", "youden"])
def test_expected_counts_score_each_cut_by_the_logistic_fit(rule):
    """On a small split: the cut scored best by expected counts, each image counting q of a
    positive and 1 - q of a negative (q from a logistic regression of the labels on the scores'
    log-odds, computed here independently), which is not the cut the counted labels choose."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(11)
    labels = (rng.random(60) < 0.6).astype(int)
    scores = 1 / (1 + np.exp(-rng.normal(1.5 * labels - 0.5, 1.2)))
    log_odds = np.log(scores / (1 - scores))[:, None]
    q = LogisticRegression(C=100.0).fit(log_odds, labels).predict_proba(log_odds)[:, 1]

    def expected_score(t):
        above = scores >= t
        tp, fp = q[above].sum(), (1 - q)[above].sum()
        if rule == "f1":
            return 2 * tp / (tp + fp + q.sum())
        if rule == "accuracy":
            return (tp + (1 - q).sum() - fp) / len(q)
        return tp / q.sum() - fp / (1 - q).sum()

    chosen = choose_threshold(binary(scores), labels, rule, counts="expected")
    assert expected_score(chosen) == pytest.approx(max(expected_score(t) for t in scores))
    counted = choose_threshold(binary(scores), labels, rule)
    assert ((scores >= chosen) != (scores >= counted)).any()


def test_threshold_a_number_or_a_missing_class():
    assert choose_threshold(binary([0.1, 0.9]), np.array([0, 1]), 0.3) == 0.3
    assert choose_threshold(binary([0.1, 0.9]), np.array([0, 0]), "f1") == 0.5
    with pytest.raises(ValueError, match="threshold rule 'best'"):
        choose_threshold(binary([0.1, 0.9]), np.array([0, 1]), "best")


def test_decide_uses_the_threshold_for_binary_and_argmax_otherwise():
    p = binary([0.2, 0.35, 0.6])
    assert decide(p).tolist() == [0, 0, 1]
    assert decide(p, 0.3).tolist() == [0, 1, 1]
    three = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert decide(three, 0.3).tolist() == [0, 2]


def test_tpr0_and_tpr10_by_hand():
    negatives = [0.99, 0.3, 0.29, 0.28, 0.27, 0.26, 0.25, 0.24, 0.23, 0.22, 0.21, 0.1]
    positives = [0.995, 0.9, 0.8, 0.25, 0.2]
    labels = np.array([0] * len(negatives) + [1] * len(positives))
    scores = np.array(negatives + positives)
    # TPR0: only 0.995 lies above the highest negative (0.99).
    assert tpr_before_fp(labels, scores, 1) == pytest.approx(1 / 5)
    # TPR10: above the tenth highest negative (0.22), nine negatives pass and 4 of 5 positives.
    assert tpr_before_fp(labels, scores, 10) == pytest.approx(4 / 5)
    # A positive tied with a negative is not counted before that false positive.
    assert tpr_before_fp(np.array([0, 1]), np.array([0.7, 0.7]), 1) == 0.0
    # Fewer negatives than allowed false positives: every positive passes.
    assert tpr_before_fp(np.array([0, 0, 1]), np.array([0.9, 0.8, 0.1]), 10) == 1.0
    assert tpr_before_fp(np.array([0, 0]), np.array([0.9, 0.8]), 1) is None


def overconfident(n=4000, sharpen=4.0, seed=0):
    """Labels drawn from softmax(z), and the probabilities of a model that reports softmax(4 z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.0, (n, 3))
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in true])
    sharp = np.exp(sharpen * z)
    return sharp / sharp.sum(1, keepdims=True), labels


def test_temperature_scaling_fixes_an_overconfident_model():
    probabilities, labels = overconfident()
    temperature = fit_temperature(probabilities, labels)
    assert temperature == pytest.approx(4.0, rel=0.15)
    calibrated = calibrate(probabilities, temperature)
    assert nll(calibrated, labels) < nll(probabilities, labels) - 0.2
    assert expected_calibration_error(calibrated, labels) < 0.03 < expected_calibration_error(probabilities, labels)
    assert (calibrated.argmax(1) == probabilities.argmax(1)).all()  # a temperature never changes the ranking


def test_temperature_stays_one_when_calibrated_or_undefined():
    probabilities, labels = overconfident(sharpen=1.0)
    assert fit_temperature(probabilities, labels) == pytest.approx(1.0, abs=0.1)
    assert fit_temperature(probabilities, np.zeros(len(labels), int)) == 1.0


def test_prior_correction_restores_the_sets_prior():
    train = np.array([0] * 70 + [1] * 30)
    assert prior_log_weights("none", train, 2).tolist() == [0.0, 0.0]
    weights = prior_log_weights("oversample", train, 2)
    # A balanced-trained model unsure of an image (0.5 / 0.5) reports the set's prior once corrected.
    assert calibrate(binary([0.5]), 1.0, weights)[0] == pytest.approx([0.7, 0.3])


def test_class_weights_of_the_loss_are_undone_too():
    """A cross-entropy weighted by w is minimised, at an image whose true posterior is pi, by
    p proportional to w * pi (found here numerically); the correction gives pi back."""
    from scipy.optimize import minimize
    from scipy.special import softmax as soft

    from search.final.stage import member_log_weights

    pi, w = np.array([0.2, 0.5, 0.3]), np.array([3.0, 1.0, 0.5])
    fitted = soft(minimize(lambda z: -(w * pi * np.log(soft(z))).sum(), np.zeros(3), tol=1e-12).x)
    assert not np.allclose(fitted, pi, atol=0.05)
    weights = prior_log_weights("none", np.array([0, 1, 2]), 3, class_weights=w)
    assert calibrate(fitted[None], 1.0, weights)[0] == pytest.approx(pi, abs=1e-4)
    # A trial's focal_alpha (binary: the weight of class 1) with a balancing strategy: both undone.
    train = np.array([0] * 70 + [1] * 30)
    both = member_log_weights({"loss": "focal", "focal_alpha": 0.25, "sampling": "oversample"}, train, 2)
    assert both == pytest.approx(np.log([0.7, 0.3]) - np.log(np.array([0.75, 0.25]) / 0.5))
    assert member_log_weights({"loss": "ce", "focal_alpha": 0.25}, train, 2).tolist() == [0.0, 0.0]


def test_decision_metrics_at_a_threshold():
    labels = np.array([0, 0, 0, 1, 1])
    p = binary([0.1, 0.2, 0.45, 0.4, 0.9])
    at_half = decision_metrics(p, labels, 0.5)
    assert at_half["confusion_matrix"] == [[3, 0], [1, 1]]
    assert (at_half["precision"], at_half["recall"]) == (1.0, 0.5)
    lower = decision_metrics(p, labels, 0.3)
    assert lower["confusion_matrix"] == [[2, 1], [0, 2]]
    assert lower["recall"] == 1.0 and lower["accuracy"] == pytest.approx(0.8)
    assert lower["auc"] == pytest.approx(5 / 6) and lower["negatives"] == 3
    assert lower["tpr0"] == pytest.approx(0.5) and lower["tpr10"] == 1.0
    assert "3 negatives" in few_negatives_note(lower)
    assert few_negatives_note({"negatives": 5000}) is None
