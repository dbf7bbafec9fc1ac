"""The final stage's results in words and tables (for the printed summary, the report and
``python -m search.final``): importable without torch or Ray."""

from __future__ import annotations

from typing import Any

import pandas as pd

SIDE_BY_SIDE = ("accuracy", "f1_macro", "precision", "recall", "auc", "tpr0", "tpr10", "ece", "nll")


def tta_suffix(tta: bool | str) -> str:
    """How a step's name says its test-time augmentation."""
    return {True: " + TTA", "hflip": " + mirror TTA"}.get(tta, "")


def side_by_side(final: dict[str, Any], split: str = "test") -> pd.DataFrame:
    """The steps' metrics on ``split`` as a table, one row a step; ``final`` marks the chosen."""
    rows = []
    for step in final["steps"]:
        metrics = step[split]
        rows.append({"model": step["name"], "final": "yes" if step["name"] == final["final"] else "no",
                     **{k: metrics.get(k) for k in SIDE_BY_SIDE if k in metrics},
                     "threshold": step["threshold"], "temperature": step["temperature"]})
    frame = pd.DataFrame(rows)
    return frame.dropna(axis=1, how="all")


def describe(final: dict[str, Any]) -> str:
    """One line: what the final model is and how it decides."""
    members = final["members"]
    if final.get("refit"):
        what = (f"{final['final']} (trial {members[0]}'s configuration trained again on the training and "
                f"validation splits for {final['refit']['epochs']} epochs, final.refit)")
    else:
        what = (f"{final['final']} (trial{'s' if len(members) > 1 else ''} {', '.join(members)}, "
                f"chosen on the validation split of {len(final['steps']) - 1} steps)")
    if final.get("left_out"):
        values = ", ".join(f"{t['trial_id']} ({t['value']:.3g})" for t in final["left_out"])
        what += f"; left out, more than one standard error ({final['tolerance']:.2g}) below the best: {values}"
    how = f"temperature {final['temperature']:.3g}"
    if final["threshold"] is not None:
        rule = final["threshold_rule"]
        counts = {"expected": "'s expected counts", "labels": "'s labels"}.get(final.get("threshold_counts"), "")
        how += f", threshold {final['threshold']:.3g}" + (f" ({rule} on the validation split{counts})" if rule else "")
    return f"final model: {what}; {how}"
def describe_seeds(check: list[dict[str, Any]], metric: str) -> str:
    """One line for the printed summary and the report."""
    parts = []
    for row in check:
        text = f"{row['trial_id']} {row['value']:.4g} (seeds {row['mean']:.4g} +- {row['std']:.2g}"
        text += f", n={len(row['seeds'])})"
        parts.append(text)
    return f"seed check ({metric}, each configuration trained again with other seeds): " + "; ".join(parts)
