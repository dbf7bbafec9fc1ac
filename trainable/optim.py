"""Optimizers (timm's factory) and per-epoch learning-rate schedules (torch's schedulers) by name."""

from __future__ import annotations

import math

import timm.optim
import torch
from torch import nn

from trainable.errors import UserError
from trainable.names import SCHEDULERS

# Our name (trainable.names.OPTIMIZERS) -> timm's optimizer name. Ranger is RAdam wrapped in
# Lookahead, as timm registers it.
OPTIMIZERS = {"adam": "adam", "adamw": "adamw", "sgd": "momentum", "ranger": "lookahead_radam"}


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


def end_with(scheduler, epochs: int) -> None:
    """Fit a schedule's last cycle to end after ``epochs`` more epochs: a time budget's end,
    when a trial trains on for what is left of it (:mod:`search.train_on`). Called after an
    epoch's ``step()``; the next epoch is the first of the ``epochs``, the last ends its cycle.

    - ``cosine``: its one cycle is stretched (or shrunk) to end with them. A trial that finished
      its cycle would otherwise train on at the schedule's floor, then climb back up its curve.
    - ``cosine_warm_restarts``: cycles keep their lengths while the next full one fits after the
      current one; otherwise the current cycle is stretched (or shrunk) to end with the budget,
      so no epoch is spent at the top of a cycle the budget cannot finish.
    - ``exponential``, ``none``: nothing to end; unchanged.

    The next epoch's learning rate is set from the new length by the schedule's own closed form
    (torch's: ``eta_min + (base - eta_min) * (1 + cos(pi * t / T)) / 2``), which torch's next
    ``step()`` goes on from.
    """
    if epochs < 1:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts):
        in_cycle = scheduler.T_i - scheduler.T_cur
        if in_cycle > epochs or epochs - in_cycle < scheduler.T_i * scheduler.T_mult:
            scheduler.T_i = scheduler.T_cur + epochs
        position, length = scheduler.T_cur, scheduler.T_i
    elif isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        scheduler.T_max = scheduler.last_epoch + epochs
        position, length = scheduler.last_epoch, scheduler.T_max
    else:
        return
    floor = scheduler.eta_min
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = floor + (base - floor) * (1 + math.cos(math.pi * position / length)) / 2
