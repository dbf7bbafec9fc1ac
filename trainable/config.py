"""One trial's settings: a flat mapping of named choices, strings and numbers only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from trainable.errors import UserError


@dataclass(frozen=True)
class TrainConfig:
    """Everything one trial varies. Every field is a hyperparameter a search space may set.

    Attributes:
        backbone: timm model name (``efficientnet_b0``, ``resnet50``, ``inception_resnet_v2``,
            ``vgg16``, ``resnet10t``, ...) or ``simple_cnn``.
        pretrained: Start from pretrained weights (a local file or timm's cache; never downloads).
        pretrained_path: Weights file for ``pretrained``; default timm's local cache.
        drop_rate: Dropout before the classifier.
        cnn_width: ``simple_cnn``'s filters in its first block; the blocks have width, width,
            2 x width, 4 x width, ... (64: the reference's 64-64-128-256). Other backbones ignore it.
        cnn_depth: ``simple_cnn``'s conv blocks, each halving the image (4: the reference's).
        optimizer: ``adam``, ``adamw``, ``sgd`` (with ``momentum``) or ``ranger`` (RAdam + Lookahead).
        lr: Initial learning rate.
        weight_decay: Weight decay (not on biases and norm parameters).
        momentum: SGD momentum; used by ``sgd`` only.
        scheduler: ``none``, ``exponential`` (``gamma``), ``cosine`` (over ``epochs``) or
            ``cosine_warm_restarts`` (``t0``, ``t_mult``); stepped once per epoch.
        gamma: Per-epoch decay of ``exponential``.
        t0: First period, in epochs, of ``cosine_warm_restarts``.
        t_mult: Period multiplier after each restart of ``cosine_warm_restarts``.
        loss: ``ce`` (cross-entropy), ``bce`` (binary tasks, one logit) or ``focal``.
        label_smoothing: Target smoothing for every loss; 0 is none.
        focal_gamma: Focusing exponent of ``focal``; 0 makes it cross-entropy.
        focal_alpha: Class weighting of ``focal``: a float (binary: weight of class 1), a list
            of per-class weights, or None.
        sampling: ``none``, ``oversample``, ``undersample`` or ``weighted`` (imbalanced classes;
            training split only).
        augment_flip: Random horizontal and vertical flips.
        augment_rot90: Random multiples of 90 degrees (square images).
        augment_rotate: Random rotation within +-this many degrees (180: any angle).
        augment_translate: Random shift within +-this fraction of the image size.
        augment_hflip: Random left-right mirrors only (photographs, which have an up).
        augment_crop: Pad-and-crop: pad by this fraction of the size, crop back at a random
            whole-pixel offset (0.125: CIFAR's 4 pixels).
        batch_size: Images per step.
        epochs: Epochs to train; the search's ASHA ``max_t`` is this.
        seed: Seeds every random number generator: the same config and seed give the same
            metrics on CPU.
        threads: CPU threads for torch; default the trial's CPUs.
        amp: Mixed precision on CUDA (bf16 where the GPU has it natively, else fp16 with loss
            scaling: trainable.device.autocast_dtype); ignored on CPU.
        channels_last: channels_last memory format on CUDA; ignored on CPU.
        throughput_batch: Images a batch when a multi-objective search measures the trial's
            inference ``throughput`` (trainable.cost).
    """

    backbone: str = "simple_cnn"
    pretrained: bool = False
    pretrained_path: str | None = None
    drop_rate: float = 0.0
    cnn_width: int = 64
    cnn_depth: int = 4
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "none"
    gamma: float = 0.95
    t0: int = 10
    t_mult: int = 1
    loss: str = "ce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    focal_alpha: float | list | None = None
    sampling: str = "none"
    augment_flip: bool = False
    augment_rot90: bool = False
    augment_rotate: float = 0.0
    augment_translate: float = 0.0
    augment_hflip: bool = False
    augment_crop: float = 0.0
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0
    threads: int | None = None
    amp: bool = True
    channels_last: bool = True
    throughput_batch: int = 64

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        """Check a flat mapping against the fields; report every problem in one error."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        defaults = cls()
        problems = []
        for key, value in values.items():
            if key not in fields:
                problems.append(f"{where}.{key}: unknown setting; known: {', '.join(fields)}")
                continue
            expected = type(getattr(defaults, key))
            if value is None or getattr(defaults, key) is None:
                continue
            ok = (isinstance(value, bool) if expected is bool else
                  isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float else
                  isinstance(value, int) and not isinstance(value, bool) if expected is int else
                  isinstance(value, expected))
            if not ok:
                problems.append(f"{where}.{key}: expected {expected.__name__}, got {value!r}")
        for key in ("lr", "batch_size", "epochs", "cnn_width", "cnn_depth", "throughput_batch"):
            value = values.get(key, getattr(defaults, key))
            if isinstance(value, (int, float)) and value <= 0:
                problems.append(f"{where}.{key}: must be positive, got {value!r}")
        if problems:
            raise UserError("; ".join(problems))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
