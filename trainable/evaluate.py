"""A trial's validation: class probabilities in evaluation mode, and the metrics a search ranks
trials by (``val_loss``, ``val_accuracy``, ``val_f1``, ``val_auc``, ``val_tpr10``)."""

from __future__ import annotations

import math

import numpy as np
import torch

from trainable.decide import accuracy_f1_auc, tpr_before_fp
from trainable.device import to_device
from trainable.trial import Trial


@torch.no_grad()
def predict(trial: Trial, images: torch.Tensor, batch_size: int = 256,
            rows: torch.Tensor | None = None) -> torch.Tensor:
    """Class probabilities (N, num_classes) for ``images`` (or ``images[rows]``, gathered a batch
    at a time), in evaluation mode; on the host, copied there once. Every row is kept: the
    ragged last batch has the same shape every epoch, so cuDNN tunes it once."""
    trial.model.eval()
    out = []
    count = len(images) if rows is None else len(rows)
    for start in range(0, count, batch_size):
        index = slice(start, start + batch_size)
        x = to_device(images[index] if rows is None else images[rows[index]], trial.device)
        if trial.device.type == "cuda" and trial.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(trial.device.type, dtype=trial.autocast_dtype,
                            enabled=trial.autocast_dtype is not None):
            out.append(trial.loss.probabilities(trial.model(x)).float())
    return torch.cat(out).cpu()


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and ROC AUC of the most probable classes
    (:func:`trainable.decide.accuracy_f1_auc`); for a binary task also ``tpr10``, the lens
    challenge's true-positive rate before the tenth false positive, which a search can rank by.

    AUC and TPR10 are NaN when a class is missing from ``labels`` (they are undefined then).

    Raises:
        ValueError: ``probabilities`` are not all finite: a diverged model has no metrics.
    """
    if not np.isfinite(probabilities).all():
        raise ValueError("probabilities are not all finite: the model diverged")
    accuracy, f1, auc = accuracy_f1_auc(probabilities, labels, probabilities.argmax(1), every_class=False)
    metrics = {"accuracy": accuracy, "f1": f1, "auc": math.nan if auc is None else auc}
    if probabilities.shape[1] == 2:
        metrics["tpr10"] = math.nan if auc is None else tpr_before_fp(labels, probabilities[:, 1], 10)
    return {k: float(v) for k, v in metrics.items()}


def validation_metrics(probabilities: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Validation loss (of the probabilities), accuracy, macro F1 and ROC AUC."""
    log_p = torch.log(probabilities.clamp_min(1e-12))
    val_loss = torch.nn.functional.nll_loss(log_p, labels).item()
    metrics = classification_metrics(probabilities.numpy(), labels.numpy())
    return {"val_loss": val_loss, **{f"val_{k}": v for k, v in metrics.items()}}
