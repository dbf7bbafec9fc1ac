"""One trial: train a backbone on an in-memory data set, validate and checkpoint every epoch.

    from trainable.train import train
    from trainable.report import LocalReporter
    metrics = train({"backbone": "resnet18", "loss": "focal", "epochs": 5}, dataset,
                    LocalReporter("runs/try1"))

``train`` is a plain function: the search driver wraps it for Ray Tune with a
:class:`~trainable.report.RayReporter`. An epoch's randomness comes from ``(seed, epoch)`` alone
(:mod:`trainable.epoch`), so a run resumed from the checkpoint of epoch ``e - 1`` continues
exactly as an uninterrupted one would. One epoch's step is :mod:`trainable.epoch`, its
validation :mod:`trainable.evaluate`, the trial's objects and saved state :mod:`trainable.trial`.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from typing import Any, Mapping

import numpy as np
import torch

from trainable import checkpoint, cost
from trainable.augment import AugmentConfig
from trainable.best import BEST_EPOCH, MODES, Best, best_key
from trainable.config import TrainConfig
from trainable.data import ImageDataset
from trainable.device import (SplitRows, autocast_dtype, bf16_native, data_placement, place_split, release,
                              split_bytes, trial_cpus, trial_gpu_fraction)
from trainable.epoch import batch_slices, train_epoch
from trainable.errors import UserError
from trainable.evaluate import classification_metrics, predict, validation_metrics
from trainable.losses import LOSSES, build_loss
from trainable.metrics import SEARCHABLE, diverged
from trainable.models import build_backbone
from trainable.optim import build_optimizer, build_scheduler, end_with
from trainable.report import LocalReporter, Reporter
from trainable.sampling import SAMPLERS
from trainable.trial import Trial, load_checkpoint, training_state

# What other modules import from here; the step, the validation and the trial's state live in
# trainable.epoch, trainable.evaluate and trainable.trial.
__all__ = ["Trial", "batch_slices", "classification_metrics", "place_data", "predict", "setup",
           "time_training", "train", "train_epoch"]

log = logging.getLogger(__name__)


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
    torch.set_num_threads(config.threads or trial_cpus())  # on GPU nodes too: trials are packed
    if cuda:
        torch.backends.cudnn.benchmark = True  # training batches have one shape: see batch_slices
    torch.manual_seed(config.seed)
    model = build_backbone(config.backbone, LOSSES[config.loss].num_outputs(dataset.num_classes),
                           dataset.in_chans, pretrained=config.pretrained,
                           pretrained_path=config.pretrained_path, drop_rate=config.drop_rate,
                           cnn_width=config.cnn_width, cnn_depth=config.cnn_depth)
    model = model.to(device)
    if cuda and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config.optimizer, config.lr, config.weight_decay,
                                config.momentum)
    scheduler = build_scheduler(optimizer, config.scheduler, config.epochs, gamma=config.gamma,
                                t0=config.t0, t_mult=config.t_mult)
    amp_dtype = autocast_dtype(config.amp, device.type, cuda and bf16_native())
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return Trial(config, model, loss.to(device), optimizer, scheduler, augment_config, device,
                 amp_dtype, scaler, trial_gpu_fraction() if cuda else 1.0)


def place_data(trial: Trial, dataset: ImageDataset) -> tuple[SplitRows, SplitRows]:
    """The train and val splits where the trial reads them, and one printed line saying where:
    copied to the GPU once when they fit the trial's share of it, else row numbers into the
    shared host copy (see :func:`trainable.device.data_placement`)."""
    # Row numbers, not copies: every concurrent trial reads the one shared array (ray#41575).
    rows = [torch.from_numpy(dataset.splits[name]) for name in ("train", "val")]
    cuda = trial.device.type == "cuda"
    total = torch.cuda.get_device_properties(trial.device).total_memory if cuda else None
    resident, line = data_placement(split_bytes(dataset.images, dataset.labels, *rows),
                                    trial.device.type, total, trial.gpu_fraction)
    print(line, flush=True)  # in the trial's log, where Ray keeps its output
    train_split, val_split = (place_split(dataset.images, dataset.labels, r, trial.device, resident)
                              for r in rows)
    return train_split, val_split


def _epoch(trial: Trial, train_split: SplitRows, val_split: SplitRows,
           epoch: int) -> tuple[dict[str, float], np.ndarray | None]:
    """Train and validate one epoch: its metrics and validation probabilities; or, when the loss,
    a weight or a probability is not finite, the worst value of every metric
    (:func:`trainable.metrics.diverged`) and None."""
    train_loss = train_epoch(trial, train_split.images, train_split.labels, epoch,
                             rows=train_split.rows)
    if math.isfinite(train_loss):
        probabilities = predict(trial, val_split.images, trial.config.batch_size * 2,
                                rows=val_split.rows)
        if torch.isfinite(probabilities).all():  # never a metric from non-finite probabilities
            scores = validation_metrics(probabilities, val_split.labels)
            metrics = {"train_loss": train_loss, **scores, "epoch": epoch + 1, "diverged": 0}
            return metrics, probabilities.numpy()
    return {**diverged(), "epoch": epoch + 1, "diverged": 1}, None


def _out_of_memory(trial: Trial, epoch: int) -> dict[str, float]:
    """The last report of a trial that ran out of GPU memory: infeasible, as a diverged one."""
    release(trial.device)
    log.warning("CUDA out of memory: %s at batch size %d does not fit in GPU fraction %g; the "
                "trial ends as infeasible", trial.config.backbone, trial.config.batch_size,
                trial.gpu_fraction)
    return {**diverged(), "epoch": epoch + 1, "diverged": 1, "out_of_memory": 1}


def train(config: TrainConfig | Mapping[str, Any], dataset: ImageDataset,
          reporter: Reporter | None = None, metric: str = "val_auc", mode: str = "max",
          until: float | None = None, costs: tuple[str, ...] = ()) -> dict[str, float]:
    """Train one configuration, reporting metrics (with ``lr``, the learning rate the epoch
    trained at) and a checkpoint after every epoch.

    Args:
        config: A :class:`TrainConfig` or a flat mapping of its fields.
        dataset: The loaded data set (its ``train`` and ``val`` splits are used).
        reporter: Where metrics and checkpoints go; default a temporary local folder.
            Resumes from ``reporter.restore()`` when it yields a checkpoint.
        metric, mode: What "best" means (:mod:`trainable.best`): every epoch also reports
            ``best_<metric>`` and ``best_epoch``, and the checkpoint keeps that epoch's weights.
        until: A ``time.time()`` no epoch should end after: training stops before an epoch
            that, as long as the last one, would not end by then (the first always runs). After
            each epoch the learning-rate schedule's last cycle is fitted to end with the epochs
            that still fit at that pace (:func:`trainable.optim.end_with`: a cosine schedule's
            cycle, or a warm-restart cycle the budget could not finish).
        costs: What the trained model costs to run, measured once before the first epoch and
            reported with every epoch: ``throughput``, ``params``, ``flops``
            (:mod:`trainable.cost`; a multi-objective search's objectives).

    Returns:
        The last epoch's metrics. A trial whose training loss, weights or validation
        probabilities stop being finite reports the worst value of every metric
        (:func:`trainable.metrics.diverged`) with ``diverged: 1`` and stops; one that runs out of GPU memory does
        the same with ``out_of_memory: 1`` too, and returns normally: it would run out again,
        so it is an infeasible configuration for the search, not a failure to retry.

    Raises:
        UserError: an invalid configuration, before any training.
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_mapping(config)
    if metric not in SEARCHABLE or mode not in MODES:
        raise UserError(f"metric {metric!r} / mode {mode!r}: the metric is one of {', '.join(SEARCHABLE)} "
                        "and the mode max or min")
    trial = setup(config, dataset)
    try:
        return _train_epochs(trial, dataset, reporter, metric, mode, until, tuple(costs))
    finally:
        release(trial.device)  # the cached GPU memory goes to the GPU's next trial


def _train_epochs(trial: Trial, dataset: ImageDataset, reporter: Reporter | None, metric: str,
                  mode: str, until: float | None = None, costs: tuple[str, ...] = ()) -> dict[str, float]:
    """Every epoch from the reporter's checkpoint on; returns the last epoch's metrics."""
    config = trial.config
    if reporter is None:
        reporter = LocalReporter(tempfile.mkdtemp(prefix="trial-"))
        log.info("checkpoints and metrics of this trial go to %s", reporter.root)
    with reporter.restore() as restored:  # read whole here: the folder may go when this exits
        if restored:
            start, best, best_weights, measured = load_checkpoint(trial, restored, mode)
        else:
            start, best, best_weights, measured = 0, Best(mode), None, {}
    if set(costs) - set(measured):
        measured.update(measure_costs(trial, dataset, [c for c in costs if c not in measured]))
    about = checkpoint.describe(config.to_dict(), dataset)
    train_split, val_split = place_data(trial, dataset)
    metrics: dict[str, float] | None = {}
    last_s = None
    for epoch in range(start, config.epochs):
        began = time.time()
        if until is not None and last_s is not None and began + last_s > until:
            break
        lr = float(trial.optimizer.param_groups[0]["lr"])  # the rate this epoch trains at
        try:
            metrics, probabilities = _epoch(trial, train_split, val_split, epoch)
        except torch.cuda.OutOfMemoryError:
            metrics, probabilities = None, None  # handled once the error's frames let go of memory
        if metrics is None:
            metrics = _out_of_memory(trial, epoch)
        metrics["lr"] = lr
        if best.update(metrics[metric], epoch + 1, diverged=bool(metrics["diverged"]), loss=metrics.get("val_loss")):
            best_weights = checkpoint.weights_copy(trial.model)
        if best.value is not None:
            metrics.update({best_key(metric): best.value, BEST_EPOCH: best.epoch})
        metrics.update(measured)
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as folder:
            checkpoint.save(folder, state=training_state(trial, epoch, measured), about=about, best=best,
                            best_weights=best_weights, probabilities=probabilities)
            reporter.report(metrics, folder)
        last_s = time.time() - began
        if metrics["diverged"]:
            break
        if until is not None and trial.scheduler is not None:
            # The epochs that fit before ``until`` at the last one's pace: the schedule ends with them.
            fit = math.floor((until - time.time()) / max(last_s, 1e-9))
            end_with(trial.scheduler, min(fit, config.epochs - epoch - 1))
    return metrics


def measure_costs(trial: Trial, dataset: ImageDataset, wanted) -> dict[str, float]:
    """The costs in ``wanted`` of the trial's model on its device (:func:`trainable.cost.measure`)."""
    return cost.measure(wanted, trial.model, (dataset.in_chans, *dataset.image_shape), trial.device,
                        trial.config.throughput_batch, trial.autocast_dtype,
                        trial.device.type == "cuda" and trial.config.channels_last)


def time_training(config: TrainConfig | Mapping[str, Any], dataset: ImageDataset,
                  steps: int = 4) -> dict[str, float]:
    """What one configuration costs on this worker's device, measured: seconds per training step
    (``config.batch_size`` images, augmentations included) and per validated image. A search
    sizes its trials from these (:mod:`search.plan`); every sampling strategy trains as many
    samples per epoch, so the strategy does not matter here.

    Times ``steps`` steps after one step and one validation batch that are not timed (lazy
    initialisation, cuDNN's tuning)."""
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_mapping(config)
    config = TrainConfig(**{**config.to_dict(), "sampling": "none", "scheduler": "none"})
    trial = setup(config, dataset)
    try:
        train_rows = torch.from_numpy(dataset.splits["train"])
        rows = train_rows[torch.arange(steps * config.batch_size) % len(train_rows)]
        val_rows = torch.from_numpy(dataset.splits["val"])
        val_rows = val_rows[torch.arange(2 * config.batch_size) % len(val_rows)]

        def timed(work) -> float:
            if trial.device.type == "cuda":
                torch.cuda.synchronize(trial.device)
            began = time.perf_counter()
            work()  # both end in a read back to the host: nothing is left queued
            return time.perf_counter() - began

        train_epoch(trial, dataset.images, dataset.labels[rows[:config.batch_size]], 0,
                    rows=rows[:config.batch_size])
        predict(trial, dataset.images, config.batch_size * 2, rows=val_rows)
        step = timed(lambda: train_epoch(trial, dataset.images, dataset.labels[rows], 1, rows=rows)) / steps
        image = timed(lambda: predict(trial, dataset.images, config.batch_size * 2, rows=val_rows)) / len(val_rows)
        return {"step_s": step, "val_image_s": image}
    finally:
        release(trial.device)
