"""The final model written into the results folder and tested: ``best_model.pt``, its test
metrics, ``test_predictions.csv``, ``misclassified.npz`` and ``best_config.yaml``
(:func:`write_results` runs the whole results stage, then this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from search.files import BEST_CONFIG_FILE, MISCLASSIFIED_FILE, MODEL_FILE, PREDICTIONS_FILE
from search.final.stage import run_final
from search.results.pareto import model_costs
from search.results.records import save_summary, summarize
from search.space import Space
from trainable.data import ImageDataset
from trainable.decide import decide, decision_metrics
from trainable.export import annotate_model, load_model

def evaluate(model_path: str | Path, dataset: ImageDataset, split: str = "test",
             probabilities: np.ndarray | None = None) -> dict[str, Any]:
    """An exported model's decisions on a split, at its stored threshold: accuracy, macro F1,
    precision, recall, ROC AUC, TPR0 and TPR10 (binary), calibration, the confusion matrix
    (:func:`trainable.decide.decision_metrics`; ``probabilities``: its predictions on the split,
    when already computed)."""
    model = load_model(model_path)
    images, labels = dataset.split(split)
    if probabilities is None:
        probabilities = model.predict(images).numpy()
    return {"split": split, **decision_metrics(probabilities, labels.numpy(), model.threshold,
                                               list(dataset.class_names))}


def write_predictions(folder: Path, dataset: ImageDataset, probabilities: np.ndarray, split: str = "test",
                      keep: int = 64, threshold: float | None = None) -> None:
    """``test_predictions.csv`` (each image of the split: index, file, true and predicted class
    at ``threshold``, class probabilities) and ``misclassified.npz`` (the ``keep`` most
    confidently wrong images, normalized as trained on, with their classes, confidence and file):
    what the report plots."""
    index = dataset.splits[split]
    labels = dataset.labels.numpy()[index]
    predicted = decide(probabilities, threshold)
    names = np.asarray(dataset.class_names)
    frame = pd.DataFrame({"index": index, "file": [dataset.files[i] for i in index],
                          "true": names[labels], "predicted": names[predicted]})
    for k, name in enumerate(dataset.class_names):
        frame[f"p_{name}"] = probabilities[:, k]
    frame.to_csv(folder / PREDICTIONS_FILE, index=False)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:keep]
    np.savez_compressed(folder / MISCLASSIFIED_FILE, images=dataset.images.numpy()[index[wrong]],
                        true=names[labels[wrong]], predicted=names[predicted[wrong]],
                        confidence=probabilities[wrong, predicted[wrong]],
                        files=np.asarray([dataset.files[index[i]] for i in wrong], dtype=str))


def best_config_file(space: Space, config: dict[str, Any], name: str) -> dict[str, Any]:
    """A space file that trains exactly ``config`` once, on the same data, for the same epochs."""
    raw = {key: value for key, value in space.raw.items() if key not in ("space", "search", "cpu")}
    data = dict(raw.get("data") or {})
    if data.get("path"):
        data["path"] = str(Path(data["path"]).expanduser().resolve())
    trial = {**{k: v for k, v in config.items()}, "resources": dict(space.resources)}
    return {**raw, "name": f"{name}-best", "data": data, "trial": trial, "space": {},
            "search": {"algorithm": "random", "num_samples": 1, "scheduler": "none"}}




def finish(grid, summary: dict[str, Any], records: list[dict[str, Any]], chosen: list[dict[str, Any]], space: Space,
           dataset: ImageDataset, folder: Path, sharing: str | None = None) -> None:
    """Build the final model from the ``chosen`` trials (:func:`search.final.stage.run_final`),
    test it, and record it in ``summary``; nothing when no trial has a value."""
    best = chosen[0] if chosen and chosen[0]["best"] is not None else None
    if best is None:
        return
    about = {"image_size": space.data.image_size and list(space.data.image_size),
             "input_size": list(dataset.image_shape), "metric": space.metric, "trial_id": best["trial_id"]}
    model_path = folder / MODEL_FILE
    final = run_final(grid, chosen, space, dataset, model_path, about, sharing=sharing)
    summary.update(best_trial=best["trial_id"], best_config=best["config"],
                   best_val={space.metric: best["best"], "epoch": best["best_epoch"]})
    if final is None:
        return
    probabilities, final = final.test_probabilities, final.record()
    test = evaluate(model_path, dataset, probabilities=probabilities)
    write_predictions(folder, dataset, probabilities, threshold=final["threshold"])
    annotate_model(model_path, test={k: test[k] for k in ("accuracy", "f1_macro", "auc", "threshold")})
    summary.update(best_val={space.metric: best["best"], "epoch": load_model(model_path).info["epoch"]},
                   test=test, model=str(model_path), final=final)
    if space.objectives:
        summary["model_costs"] = model_costs(final, records, space)
    (folder / BEST_CONFIG_FILE).write_text(
        f"# The best configuration of search {summary['name']!r} (trial {best['trial_id']}, "
        f"{space.metric} {best['best']:.4f}).\n# Retrain it: python -m search.run "
        f"{folder / BEST_CONFIG_FILE}\n"
        + yaml.safe_dump(best_config_file(space, best["config"], summary["name"]), sort_keys=False))


def write_results(grid, space: Space, name: str, dataset: ImageDataset, folder: str | Path,
                  experiment_path: str, complete: bool = True, cluster: dict | None = None,
                  extra: dict | None = None) -> dict[str, Any]:
    """Rank the trials (:mod:`search.results`), build and test the final model from the best
    trials' checkpoints, and write the results folder. Returns the summary (``summary.json``)."""
    folder = Path(folder)
    summary, records, chosen = summarize(grid, space, name, dataset, folder, experiment_path, complete, cluster, extra)
    finish(grid, summary, records, chosen, space, dataset, folder, sharing=(cluster or {}).get("data_sharing"))
    save_summary(folder, summary, records)
    return summary
