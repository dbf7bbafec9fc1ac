"""What one trial trains with, and the state of it a checkpoint keeps for resume.

:func:`trainable.train.setup` builds a :class:`Trial` from a configuration; every epoch saves
:func:`training_state`, and a restarted trial continues from :func:`load_checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainable import checkpoint
from trainable.augment import AugmentConfig
from trainable.best import Best
from trainable.config import TrainConfig


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
    gpu_fraction: float = 1.0  # of its GPU, as Ray assigned it: sizes what the trial may hold


def training_state(trial: Trial, epoch: int, costs: dict[str, float] | None = None) -> dict[str, Any]:
    """What resume needs of the trial after epoch ``epoch`` (0-based), with the costs measured
    before its first epoch (:mod:`trainable.cost`)."""
    return {"model": trial.model.state_dict(), "optimizer": trial.optimizer.state_dict(),
            "scheduler": trial.scheduler.state_dict() if trial.scheduler else None,
            "scaler": trial.scaler.state_dict(), "epoch": epoch, "costs": costs or {}}


def load_checkpoint(trial: Trial, folder: str, mode: str = "max") -> tuple[int, Best, dict | None, dict]:
    """Restore a trial's state from a checkpoint folder; returns the epoch to continue from, the
    best value, epoch and weights so far, and the costs measured before the first epoch."""
    state = checkpoint.load_state(folder, trial.device)
    trial.model.load_state_dict(state["model"])
    trial.optimizer.load_state_dict(state["optimizer"])
    if trial.scheduler is not None and state["scheduler"] is not None:
        trial.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        trial.scaler.load_state_dict(state["scaler"])
    return (state["epoch"] + 1, *checkpoint.restore_best(state, folder, mode), dict(state.get("costs") or {}))
