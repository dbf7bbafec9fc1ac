"""Which threshold rule decides best? The final model of finished binary searches, its threshold
chosen on the validation split by each rule, judged on the test split (and, for simulated lens
sets, on a larger held-out set simulated with another seed).

Usage:
    python benchmarks/threshold_rules.py results/lens_finding [more results folders] [--holdout 2000]

For each results folder: the final model (``best_model.pt``, with its temperature and TTA) on
the validation and test splits of the data the search used (``space.yaml``; a relative data
path is read from the folder the search ran in, two levels above ``results/NAME``), then per
rule (``f1``, ``youden``, ``accuracy``, each from the labels and from expected counts,
``trainable.decide.choose_threshold(..., counts="expected")``; and ``0.5``) the threshold from the
validation split and, on the test split: accuracy, the best accuracy any threshold gives there
(an oracle), the gap between the two, the lens class's F1, precision and recall. Prints one
Markdown row per folder and rule, the final model's ROC AUC on each split, then the mean over
the folders per split and rule. The
held-out images are simulated once (seed 7) for all folders.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RULES = (*((rule, counts) for rule in ("f1", "youden", "accuracy") for counts in ("labels", "expected")),
         (0.5, "labels"))


def rule_name(rule, counts: str) -> str:
    if not isinstance(rule, str):
        return f"{rule:g}"
    return f"{rule}, {counts}"


def best_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """The highest accuracy of any threshold on these scores (the test split's oracle)."""
    from trainable.decide import choose_threshold

    p = np.stack([1 - scores, scores], 1)
    t = choose_threshold(p, labels, "accuracy")
    return float(((scores >= t).astype(int) == labels).mean())


def judge(val: np.ndarray, y_val: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> list[dict]:
    from trainable.decide import choose_threshold, decision_metrics

    oracle = best_accuracy(test[:, 1], y_test)
    rows = []
    for rule, counts in RULES:
        threshold = choose_threshold(val, y_val, rule, counts=counts)
        m = decision_metrics(test, y_test, threshold)
        precision, recall = m["precision"], m["recall"]
        rows.append({"rule": rule_name(rule, counts), "threshold": threshold, "accuracy": m["accuracy"],
                     "oracle": oracle, "gap": oracle - m["accuracy"], "precision": precision, "recall": recall,
                     "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                     "f1_macro": m["f1_macro"], "n": m["n"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--holdout", type=int, default=0,
                        help="also judge on this many images simulated with another seed (lens sets)")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from search import load_model, load_space
    from trainable.data import load_dataset

    print("| search | split | rule | threshold | accuracy | best accuracy of any threshold | gap | "
          "precision (class 1) | recall (class 1) | F1 (class 1) | macro F1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    table: dict[tuple[str, str], list[dict]] = {}
    aucs: list[tuple] = []  # (folder, split, images, ROC AUC of the final model)
    with tempfile.TemporaryDirectory() as scratch:
        simulated: dict[str, Path] = {}
        for folder in [f.resolve() for f in args.folders]:
            os.chdir(folder.parent.parent)  # where the search ran: its data path is relative to it
            space = load_space(folder / "space.yaml", has_gpu=False)
            dataset = load_dataset(space.data)
            model = load_model(folder / "best_model.pt")
            val_images, y_val = dataset.split("val")
            val = model.predict(val_images).numpy()
            splits = {"test": (model.predict(dataset.split("test")[0]).numpy(), dataset.split("test")[1].numpy())}
            if args.holdout and space.data.simulate:
                from trainable.simulate import simulate

                kind = space.data.simulate
                kind = kind.get("kind") if isinstance(kind, dict) else kind
                if kind not in simulated:
                    simulated[kind] = Path(scratch, kind)
                    simulate(kind, simulated[kind], n=args.holdout, seed=7)
                held = load_dataset({**space.raw["data"], "path": str(simulated[kind]), "simulate": None})
                splits["held-out"] = (model.predict(held.images).numpy(), held.labels.numpy())
            aucs.append((folder, "val", len(y_val), roc_auc_score(y_val.numpy(), val[:, 1])))
            for split, (p, y) in splits.items():
                aucs.append((folder, split, len(y), roc_auc_score(y, p[:, 1])))
                for row in judge(val, y_val.numpy(), p, y):
                    table.setdefault((split, row["rule"]), []).append(row)
                    print(f"| {folder} | {split} ({row['n']}) | {row['rule']} | {row['threshold']:.3f} | "
                          f"{row['accuracy']:.3f} | {row['oracle']:.3f} | {row['gap']:.3f} | {row['precision']:.3f} | "
                          f"{row['recall']:.3f} | {row['f1']:.3f} | {row['f1_macro']:.3f} |", flush=True)
    print("\nThe final model's ROC AUC on each split (the held-out images are new to every search):\n")
    print("| search | split | images | ROC AUC |")
    print("| --- | --- | --- | --- |")
    for folder, split, n, auc in aucs:
        print(f"| {folder} | {split} | {n} | {auc:.3f} |")
    print(f"\nMean over the {len(args.folders)} folders:\n")
    print("| split | rule | accuracy | gap | gap at most 0.02 | precision (class 1) | recall (class 1) "
          "| F1 (class 1) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (split, rule), rows in table.items():
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("accuracy", "gap", "precision", "recall", "f1")}
        within = sum(r["gap"] <= 0.02 + 1e-9 for r in rows)
        print(f"| {split} | {rule} | {mean['accuracy']:.3f} | {mean['gap']:.3f} | {within} of {len(rows)} | "
              f"{mean['precision']:.3f} | {mean['recall']:.3f} | {mean['f1']:.3f} |")


if __name__ == "__main__":
    main()
