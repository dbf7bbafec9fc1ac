"""How far can a threshold chosen on a small validation split be from the best one on a test
split, by chance alone? Scores drawn from a known model, so the true best threshold is known.

Usage:
    python benchmarks/threshold_noise.py [--draws 1000]

Scores: the binormal model, ``z ~ N(0, 1)`` for a non-lens and ``N(d, 1)`` for a lens, 69 % lenses
(the Bologna set's 2.3:1), ``d`` set for a ROC AUC of 0.95 (the quick start's models). For each
pair of split sizes, ``--draws`` times: a validation split and a test split are drawn, the
threshold chosen on the validation split by ``trainable.decide.choose_threshold`` (the lens
class's F1 and accuracy, from counted labels and from expected ones), and judged by:

- the accuracy and F1 it loses against the true best threshold, on the whole population;
- its gap on the test split: the best accuracy any threshold gives there (an oracle that sees
  the test labels) minus its own; and how often that gap is at most 0.02.

The oracle row is the true best threshold itself: the gap it leaves is the test split's noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LENS_SHARE = 0.69
AUC = 0.95
SIZES = ((90, 90), (120, 360), (90, 2000))  # (validation, test): the old and new quick start; a large test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()

    from trainable.decide import choose_threshold

    d = np.sqrt(2) * norm.ppf(AUC)
    rng = np.random.default_rng(0)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = (rng.random(n) < LENS_SHARE).astype(int)
        return rng.normal(size=n) + d * labels, labels

    def true_rates(t):
        return 1 - norm.cdf(t - d), 1 - norm.cdf(t)  # TPR, FPR of the cut z >= t

    def true_accuracy(t):
        tpr, fpr = true_rates(t)
        return LENS_SHARE * tpr + (1 - LENS_SHARE) * (1 - fpr)

    def true_f1(t):
        tpr, fpr = true_rates(t)
        tp, fp = LENS_SHARE * tpr, (1 - LENS_SHARE) * fpr
        return 2 * tp / (tp + fp + LENS_SHARE)

    grid = np.linspace(-4, 8, 8001)
    best_accuracy, best_f1, oracle = true_accuracy(grid).max(), true_f1(grid).max(), grid[true_accuracy(grid).argmax()]

    def threshold(z, labels, rule, counts):
        p = 1 / (1 + np.exp(-z))  # any increasing map: the rules depend on the order (and the fit undoes the scale)
        t = choose_threshold(np.stack([1 - p, p], 1), labels, rule, counts=counts)
        return np.log(t / (1 - t))

    rules = [(rule, counts) for rule in ("f1", "accuracy") for counts in ("labels", "expected")]
    print(f"Binormal scores, ROC AUC {AUC}, {LENS_SHARE:.0%} lenses, {args.draws} draws per row.\n")
    print("| validation / test images | rule | accuracy lost | F1 lost | test gap (mean) | test gap at most 0.02 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n_val, n_test in SIZES:
        rows = {name: ([], [], []) for name in [*(f"{r}, {c}" for r, c in rules), "true best"]}
        for _ in range(args.draws):
            z, labels = draw(n_val)
            z_test, y_test = draw(n_test)
            cuts = np.concatenate([np.sort(z_test), [np.inf]])
            test_best = max(((z_test >= c) == y_test).mean() for c in cuts)
            chosen = {f"{r}, {c}": threshold(z, labels, r, c) for r, c in rules}
            chosen["true best"] = oracle
            for name, t in chosen.items():
                lost_accuracy, lost_f1, gap = rows[name]
                lost_accuracy.append(best_accuracy - true_accuracy(t))
                lost_f1.append(best_f1 - true_f1(t))
                gap.append(test_best - ((z_test >= t) == y_test).mean())
        for name, (lost_accuracy, lost_f1, gap) in rows.items():
            gap = np.asarray(gap)
            print(f"| {n_val} / {n_test} | {name} | {np.mean(lost_accuracy):.4f} | {np.mean(lost_f1):.4f} | "
                  f"{gap.mean():.4f} | {(gap <= 0.02 + 1e-9).mean():.0%} |", flush=True)


if __name__ == "__main__":
    main()
