"""Optimizers (timm's factory) and per-epoch learning-rate schedules (torch's schedulers) by name."""

from __future__ import annotations

import timm.optim
import torch
from torch import nn

from trainable.errors import UserError

# Our name -> timm's optimizer name. Ranger is RAdam wrapped in Lookahead, as timm registers it.
OPTIMIZERS = {"adam": "adam", "adamw": "adamw", "sgd": "momentum", "ranger": "lookahead_radam"}
SCHEDULERS = ("none", "exponential", "cosine", "cosine_warm_restarts")


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """``timm.optim.create_optimizer_v2`` for one of :data:`OPTIMIZERS`.

    Weight decay is not applied to biases and normalization parameters (timm's default).
    ``momentum`` is used by ``sgd`` only.
    """
    if name not in OPTIMIZERS:
        raise UserError(f"optimizer {name!r} is unknown; known optimizers: {', '.join(OPTIMIZERS)}")
    kwargs = {"momentum": momentum} if name == "sgd" else {}
    return timm.optim.create_optimizer_v2(model, OPTIMIZERS[name], lr=lr,
                                          weight_decay=weight_decay, **kwargs)


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int, *,
                    gamma: float = 0.95, t0: int = 10, t_mult: int = 1):
    """A learning-rate schedule stepped once per epoch, or None for ``none``.

    Args:
        name: ``exponential`` (lr * gamma each epoch), ``cosine`` (to zero over ``epochs``),
            ``cosine_warm_restarts`` (period ``t0`` epochs, times ``t_mult`` after each restart)
            or ``none``.
    """
    if name == "none":
        return None
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "cosine_warm_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=t0, T_mult=t_mult)
    raise UserError(f"scheduler {name!r} is unknown; known schedulers: {', '.join(SCHEDULERS)}")
