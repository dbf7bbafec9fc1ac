"""One trial: train a backbone on an in-memory data set, validate and checkpoint every epoch.

    from trainable.train import train
    from trainable.report import LocalReporter
    metrics = train({"backbone": "resnet18", "loss": "focal", "epochs": 5}, dataset,
                    LocalReporter("runs/try1"))

``train`` is a plain function: the search driver wraps it for Ray Tune with a
:class:`~trainable.report.RayReporter`. All randomness of epoch ``e`` (sampling order,
augmentation, dropout) is drawn from generators seeded with ``(seed, e)``, so a run resumed from
the checkpoint of epoch ``e - 1`` continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from trainable.augment import AugmentConfig, augment
from trainable.config import TrainConfig
from trainable.data import ImageDataset
from trainable.errors import UserError
from trainable.losses import LOSSES, build_loss
from trainable.models import build_backbone
from trainable.optim import build_optimizer, build_scheduler
from trainable.report import LocalReporter, Reporter
from trainable.sampling import SAMPLERS, epoch_indices

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
VAL_PROBABILITIES_FILE = "val_probabilities.npy"  # beside it: the epoch's validation predictions
# What a diverged trial reports: the worst value of every metric, whichever the search maximizes.
DIVERGED = {"val_loss": math.inf, "val_accuracy": 0.0, "val_f1": 0.0, "val_auc": 0.0,
            "train_loss": math.inf}


@dataclass
class Trial:
    """The objects one trial trains with."""

    config: TrainConfig
    model: torch.nn.Module
    loss: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    augment: AugmentConfig
    device: torch.device
    autocast_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler  # loss scaling for float16 autocast; a no-op otherwise


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def setup(config: TrainConfig, dataset: ImageDataset) -> Trial:
    """Check the configuration against the data set and build everything, before any training."""
    if config.loss not in LOSSES:
        raise UserError(f"loss {config.loss!r} is unknown; known losses: {', '.join(LOSSES)}")
    if config.sampling not in SAMPLERS:
        raise UserError(f"sampling {config.sampling!r} is unknown; known: {', '.join(SAMPLERS)}")
    augment_config = AugmentConfig.from_config(config.to_dict())
    augment_config.check_image_size(*dataset.image_shape)
    loss = build_loss(config.loss, dataset.num_classes, label_smoothing=config.label_smoothing,
                      focal_gamma=config.focal_gamma, focal_alpha=config.focal_alpha)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        torch.set_num_threads(config.threads or _trial_cpus())
    torch.manual_seed(config.seed)
    model = build_backbone(config.backbone, LOSSES[config.loss].num_outputs(dataset.num_classes),
                           dataset.in_chans, pretrained=config.pretrained,
                           pretrained_path=config.pretrained_path, drop_rate=config.drop_rate)
    model = model.to(device)
    if cuda and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config.optimizer, config.lr, config.weight_decay,
                                config.momentum)
    scheduler = build_scheduler(optimizer, config.scheduler, config.epochs, gamma=config.gamma,
                                t0=config.t0, t_mult=config.t_mult)
    autocast_dtype = None
    if cuda and config.amp:
        autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    return Trial(config, model, loss.to(device), optimizer, scheduler, augment_config, device,
                 autocast_dtype, scaler)


def _trial_cpus() -> int:
    """CPUs Ray gave this trial, else the CPUs this process may use."""
    try:
        import ray

        if ray.is_initialized():
            return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    except Exception:  # outside a Ray worker
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def train_epoch(trial: Trial, images: torch.Tensor, labels: torch.Tensor, epoch: int,
                rows: torch.Tensor | None = None) -> float:
    """One pass over the training split in the sampling strategy's order; returns the mean loss
    (NaN when the loss stopped being finite, which ends the trial).

    ``labels`` are the training labels. ``images`` are the training images, or, with ``rows``
    (the training split's row numbers), the whole set: batches are then gathered from it, so
    concurrent trials share one copy of the data (Ray's object store) instead of each copying
    its training split."""
    config, device = trial.config, trial.device
    seed = epoch_seed(config.seed, epoch)
    torch.manual_seed(seed)  # dropout and anything else drawing from torch's global generator
    generator = torch.Generator(device).manual_seed(seed)
    order = torch.from_numpy(epoch_indices(config.sampling, labels.numpy(), config.seed, epoch))
    trial.model.train()
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size]
        if len(index) < 2 and count:  # a batch of one breaks batch norm; it is dropped
            break
        x = images[index if rows is None else rows[index]].to(device, non_blocking=True)
        y = labels[index].to(device, non_blocking=True)
        if trial.augment.enabled:
            x = augment(x, trial.augment, generator)
        if device.type == "cuda" and config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=trial.autocast_dtype,
                            enabled=trial.autocast_dtype is not None):
            loss = trial.loss(trial.model(x), y)
        if not torch.isfinite(loss):
            return math.nan
        trial.optimizer.zero_grad(set_to_none=True)
        trial.scaler.scale(loss).backward()
        trial.scaler.step(trial.optimizer)
        trial.scaler.update()
        total += loss.item() * len(index)
        count += len(index)
    if trial.scheduler is not None:
        trial.scheduler.step()
    return total / max(count, 1)


@torch.no_grad()
def predict(trial: Trial, images: torch.Tensor, batch_size: int = 256,
            rows: torch.Tensor | None = None) -> torch.Tensor:
    """Class probabilities (N, num_classes) for ``images`` (or ``images[rows]``, gathered a batch
    at a time), in evaluation mode."""
    trial.model.eval()
    out = []
    count = len(images) if rows is None else len(rows)
    for start in range(0, count, batch_size):
        x = images[start:start + batch_size] if rows is None else images[rows[start:start + batch_size]]
        x = x.to(trial.device)
        if trial.device.type == "cuda" and trial.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(trial.device.type, dtype=trial.autocast_dtype,
                            enabled=trial.autocast_dtype is not None):
            out.append(trial.loss.probabilities(trial.model(x)).float().cpu())
    return torch.cat(out)


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and ROC AUC (binary, or one-vs-rest macro) with scikit-learn."""
    predicted = probabilities.argmax(1)
    metrics = {"accuracy": accuracy_score(labels, predicted),
               "f1": f1_score(labels, predicted, average="macro")}
    try:
        if probabilities.shape[1] == 2:
            metrics["auc"] = roc_auc_score(labels, probabilities[:, 1])
        else:
            metrics["auc"] = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro",
                                           labels=np.arange(probabilities.shape[1]))
    except ValueError:  # a class missing from the split: AUC is undefined
        metrics["auc"] = math.nan
    return {k: float(v) for k, v in metrics.items()}


def validate(trial: Trial, images: torch.Tensor, labels: torch.Tensor,
             rows: torch.Tensor | None = None, with_probabilities: bool = False):
    """Validation loss, accuracy, macro F1 and ROC AUC; ``rows`` as in :func:`predict`. With
    ``with_probabilities``, also the class probabilities: ``(metrics, probabilities)``."""
    probabilities = predict(trial, images, batch_size=trial.config.batch_size * 2, rows=rows)
    log_p = torch.log(probabilities.clamp_min(1e-12))
    val_loss = torch.nn.functional.nll_loss(log_p, labels).item()
    metrics = classification_metrics(probabilities.numpy(), labels.numpy())
    metrics = {"val_loss": val_loss, **{f"val_{k}": v for k, v in metrics.items()}}
    return (metrics, probabilities.numpy()) if with_probabilities else metrics


def save_checkpoint(trial: Trial, folder: str, epoch: int, dataset: ImageDataset) -> None:
    """Model, optimizer, scheduler, epoch and config: loadable with ``torch.load(weights_only=True)``."""
    torch.save({
        "model": trial.model.state_dict(),
        "optimizer": trial.optimizer.state_dict(),
        "scheduler": trial.scheduler.state_dict() if trial.scheduler else None,
        "scaler": trial.scaler.state_dict(),
        "epoch": epoch,
        "config": trial.config.to_dict(),
        "class_names": list(dataset.class_names),
        "in_chans": dataset.in_chans,
        "normalization": dataset.normalization,
    }, os.path.join(folder, CHECKPOINT_FILE))


def load_checkpoint(trial: Trial, folder: str) -> int:
    """Restore a trial's state; returns the epoch to continue from."""
    state = torch.load(os.path.join(folder, CHECKPOINT_FILE), map_location=trial.device,
                       weights_only=True)
    trial.model.load_state_dict(state["model"])
    trial.optimizer.load_state_dict(state["optimizer"])
    if trial.scheduler is not None and state["scheduler"] is not None:
        trial.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        trial.scaler.load_state_dict(state["scaler"])
    return state["epoch"] + 1


def train(config: TrainConfig | Mapping[str, Any], dataset: ImageDataset,
          reporter: Reporter | None = None) -> dict[str, float]:
    """Train one configuration, reporting metrics and a checkpoint after every epoch.

    Args:
        config: A :class:`TrainConfig` or a flat mapping of its fields.
        dataset: The loaded data set (its ``train`` and ``val`` splits are used).
        reporter: Where metrics and checkpoints go; default a temporary local folder.
            Resumes from ``reporter.restore()`` when it returns a checkpoint.

    Returns:
        The last epoch's metrics. A trial whose loss stops being finite reports the worst value
        of every metric with ``diverged: 1`` and stops.

    Raises:
        UserError: an invalid configuration, before any training.
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_mapping(config)
    trial = setup(config, dataset)
    if reporter is None:
        reporter = LocalReporter(tempfile.mkdtemp(prefix="trial-"))
        log.info("checkpoints and metrics of this trial go to %s", reporter.root)
    restored = reporter.restore()
    start = load_checkpoint(trial, restored) if restored else 0
    # Row numbers, not copies: every concurrent trial reads the one shared array (ray#41575).
    train_rows, val_rows = (torch.from_numpy(dataset.splits[name]) for name in ("train", "val"))
    y_train, y_val = dataset.labels[train_rows], dataset.labels[val_rows]
    metrics: dict[str, float] = {}
    for epoch in range(start, config.epochs):
        train_loss = train_epoch(trial, dataset.images, y_train, epoch, rows=train_rows)
        probabilities = None
        if math.isnan(train_loss):
            metrics = {**DIVERGED, "epoch": epoch + 1, "diverged": 1}
        else:
            scores, probabilities = validate(trial, dataset.images, y_val, rows=val_rows, with_probabilities=True)
            metrics = {"train_loss": train_loss, **scores, "epoch": epoch + 1, "diverged": 0}
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as folder:
            save_checkpoint(trial, folder, epoch, dataset)
            if probabilities is not None:  # for the plots of the trial's W&B run
                np.save(os.path.join(folder, VAL_PROBABILITIES_FILE), probabilities.astype(np.float32))
            reporter.report(metrics, folder)
        if metrics["diverged"]:
            break
    return metrics
