"""Classification losses, chosen by name from :data:`LOSSES` through :func:`build_loss`.

Every loss is an :class:`torch.nn.Module` that follows the :class:`Loss` contract, so the training
loop never branches on the loss name: it asks the loss how many logits the model must output
(:meth:`Loss.num_outputs`), trains on ``loss(logits, targets)`` and turns logits into class
probabilities for metrics and predictions with :meth:`Loss.probabilities`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainable.errors import UserError

__all__ = ["LOSSES", "Loss", "CrossEntropyLoss", "BinaryCrossEntropyLoss", "FocalLoss",
           "build_loss"]


class Loss(nn.Module):
    """Contract of every registered loss.

    * ``num_outputs(num_classes)`` (static): how many logits the model must output.
    * ``forward(logits, targets)``: ``logits`` is ``(N, num_outputs)`` in any float dtype (float16
      or bfloat16 under autocast; the loss is computed in float32), ``targets`` the int64 class
      indices ``(N,)``; returns the mean loss over the batch as a scalar tensor.
    * ``probabilities(logits)``: ``(N, num_classes)`` float32 class probabilities, rows summing to 1.
    """

    @staticmethod
    def num_outputs(num_classes: int) -> int:
        return num_classes

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=1)


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy with optional label smoothing (``F.cross_entropy``)."""

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)


class BinaryCrossEntropyLoss(Loss):
    """Sigmoid cross-entropy on one logit (the score of class 1); binary tasks only.

    Label smoothing moves the targets to ``y * (1 - eps) + eps / 2``, the two-class version of what
    ``F.cross_entropy`` does, so ``bce`` and ``ce`` smooth alike.
    """

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0):
        super().__init__()
        if num_classes != 2:
            raise UserError(f"loss 'bce' needs a binary task (one logit); this data set has "
                            f"{num_classes} classes: use ce or focal")
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    @staticmethod
    def num_outputs(num_classes: int) -> int:
        return 1

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        target = targets.float() * (1.0 - self.label_smoothing) + self.label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits.float().reshape(-1), target)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        positive = torch.sigmoid(logits.float().reshape(-1))
        return torch.stack([1.0 - positive, positive], dim=1)


class FocalLoss(Loss):
    """Focal loss (Lin et al. 2017) through softmax, for any number of classes.

    ``FL = -sum_c q_c * alpha_c * (1 - p_c) ** gamma * log p_c`` with ``q`` the one-hot target,
    label-smoothed as ``F.cross_entropy`` does it (``(1 - eps) * onehot + eps / num_classes``), so
    with ``gamma = 0`` and no ``alpha`` it equals ``ce`` exactly.

    Args:
        num_classes: Number of classes (and logits).
        gamma: Focusing exponent, ``>= 0``; larger values down-weight well-classified examples.
        alpha: Per-class weights (a tensor of ``num_classes`` values) or None for none.
        label_smoothing: ``eps`` in ``[0, 1)``.
    """

    EPS = 1e-12  # the smallest 1 - p used: gamma * EPS ** (gamma - 1) stays finite in float32

    def __init__(self, num_classes: int, *, gamma: float = 2.0, alpha: torch.Tensor | None = None,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        # A buffer so it follows the module to the training device; not persistent because it is
        # part of the config, which is saved with the weights anyway.
        self.register_buffer("alpha", alpha, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        eps = self.label_smoothing
        q = F.one_hot(targets, self.num_classes).float() * (1.0 - eps) + eps / self.num_classes
        # 1 - p from log p without cancellation, clamped away from 0: the derivative of
        # (1 - p) ** gamma is infinite at p = 1 for gamma < 1, and a saturated logit (margin 20
        # and more) reaches p = 1 in float32, which made the gradient NaN while the loss stayed
        # finite. The clamp's gradient is 0 there, so the modulating factor's gradient is 0 too.
        # (x ** 0 is 1 even at the clamp, which keeps gamma = 0 identical to cross-entropy.)
        one_minus_p = (-torch.expm1(log_p)).clamp_min(self.EPS)
        terms = q * one_minus_p.pow(self.gamma) * log_p
        if self.alpha is not None:
            terms = terms * self.alpha
        return -terms.sum(dim=1).mean()


LOSSES: dict[str, type[Loss]] = {
    "ce": CrossEntropyLoss,
    "bce": BinaryCrossEntropyLoss,
    "focal": FocalLoss,
}
"""Loss name -> :class:`Loss` subclass; build one with :func:`build_loss`, which validates the knobs."""


def focal_alpha_weights(alpha: float | Sequence[float] | None, num_classes: int) -> torch.Tensor | None:
    """Check ``focal_alpha`` and turn it into per-class weights (None: no weighting)."""
    if alpha is None:
        return None
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        if num_classes != 2:
            raise UserError(f"focal_alpha {alpha!r}: a single number is only for binary tasks; "
                            f"this data set has {num_classes} classes: give a list of "
                            f"{num_classes} per-class weights")
        if not 0.0 < alpha < 1.0:
            raise UserError(f"focal_alpha {alpha!r} must lie in (0, 1) (the weight of class 1)")
        # RetinaNet's convention: alpha weighs the positive class, 1 - alpha the negative one.
        return torch.tensor([1.0 - alpha, alpha], dtype=torch.float32)
    if isinstance(alpha, (str, bytes)) or not isinstance(alpha, Sequence):
        raise UserError(f"focal_alpha {alpha!r} must be a number in (0, 1), a list of "
                        f"{num_classes} non-negative weights, or null")
    weights = list(alpha)
    if len(weights) != num_classes:
        raise UserError(f"focal_alpha has {len(weights)} weights; this data set has "
                        f"{num_classes} classes")
    if not all(isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w)
               and w >= 0 for w in weights) or sum(weights) == 0:
        raise UserError(f"focal_alpha {weights!r} must be finite non-negative numbers, not all 0")
    return torch.tensor(weights, dtype=torch.float32)


def build_loss(name: str, num_classes: int, *, label_smoothing: float = 0.0,
               focal_gamma: float = 2.0,
               focal_alpha: float | list[float] | None = None) -> Loss:
    """Build the loss called ``name``, checking every knob first.

    ``focal_gamma`` and ``focal_alpha`` are read by ``focal`` only and ignored by the other losses
    whatever their value: the search space samples them only when ``loss`` is ``focal``, and a
    flat config that carries them for every trial must not fail its ``ce`` and ``bce`` trials.
    They are still checked, so a bad value fails at once rather than when ``focal`` is drawn.

    Args:
        name: A key of :data:`LOSSES`.
        num_classes: Number of classes in the data set (at least 2).
        label_smoothing: Smoothing ``eps`` in ``[0, 1)``; every loss uses it.
        focal_gamma: Focal focusing exponent, ``>= 0``.
        focal_alpha: Focal class weights: None for none, a number in (0, 1) for the weight of
            class 1 in a binary task (class 0 gets ``1 - alpha``), or a list of ``num_classes``
            non-negative weights.

    Returns:
        The loss module; the model must output ``loss.num_outputs(num_classes)`` logits.

    Raises:
        UserError: Unknown name, a value out of range, or ``bce`` on more than two classes.
    """
    if name not in LOSSES:
        raise UserError(f"loss {name!r} is unknown; known losses: {', '.join(LOSSES)}")
    if num_classes < 2:
        raise UserError(f"loss {name!r} needs at least 2 classes; this data set has {num_classes}")
    if not 0.0 <= label_smoothing < 1.0:
        raise UserError(f"label_smoothing {label_smoothing!r} must lie in [0, 1)")
    if not focal_gamma >= 0.0:  # written so NaN fails too
        raise UserError(f"focal_gamma {focal_gamma!r} must be >= 0")
    alpha = focal_alpha_weights(focal_alpha, num_classes)
    if name == "focal":
        return FocalLoss(num_classes, gamma=focal_gamma, alpha=alpha,
                         label_smoothing=label_smoothing)
    return LOSSES[name](num_classes, label_smoothing=label_smoothing)
