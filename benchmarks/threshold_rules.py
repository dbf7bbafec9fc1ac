"""Which threshold rule decides best? The final model of finished binary searches, its threshold
chosen on the validation split by each rule, judged on the test split (and, for simulated lens
sets, on a larger held-out set simulated with another seed).

Usage:
    python benchmarks/threshold_rules.py results/lens_finding [more results folders] [--holdout 2000]

For each results folder: the final model (``best_model.pt``, with its temperature and TTA) on
the validation and test splits of the data the search used (``space.yaml``), then per rule
(``f1``, ``youden``, ``accuracy``, ``0.5``) the threshold from the validation split and, on the
test split: accuracy, the best accuracy any threshold gives there (an oracle), the gap between
the two, the lens class's F1, precision and recall. Prints one Markdown row per folder and rule.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RULES = ("f1", "youden", "accuracy", 0.5)


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
    for rule in RULES:
        threshold = choose_threshold(val, y_val, rule)
        m = decision_metrics(test, y_test, threshold)
        rows.append({"rule": rule, "threshold": threshold, "accuracy": m["accuracy"], "oracle": oracle,
                     "gap": oracle - m["accuracy"], "precision": m["precision"], "recall": m["recall"],
                     "f1_macro": m["f1_macro"], "n": m["n"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--holdout", type=int, default=0,
                        help="also judge on this many images simulated with another seed (lens sets)")
    args = parser.parse_args()

    from search.space import load_space
    from trainable.data import load_dataset
    from trainable.export import load_model

    print("| search | split | rule | threshold | accuracy | best accuracy of any threshold | gap | "
          "precision (class 1) | recall (class 1) | macro F1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in args.folders:
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
            with tempfile.TemporaryDirectory() as scratch:
                simulate(kind, Path(scratch), n=args.holdout, seed=7)
                held = load_dataset({**space.raw["data"], "path": scratch, "simulate": None})
                splits["held-out"] = (model.predict(held.images).numpy(), held.labels.numpy())
        for split, (p, y) in splits.items():
            for row in judge(val, y_val.numpy(), p, y):
                rule = row["rule"] if isinstance(row["rule"], str) else f"{row['rule']:g}"
                print(f"| {folder.name} | {split} ({row['n']}) | {rule} | {row['threshold']:.3f} | "
                      f"{row['accuracy']:.3f} | {row['oracle']:.3f} | {row['gap']:.3f} | {row['precision']:.3f} | "
                      f"{row['recall']:.3f} | {row['f1_macro']:.3f} |")


if __name__ == "__main__":
    main()
