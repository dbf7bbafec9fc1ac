"""The names a space file may give, one tuple (or mapping) per registry, in pure Python.

The space check (:mod:`search.space.check`) reads these before torch, timm or Ray are imported,
so a typo is refused in a second or two. Each registry keeps its own dict of callables; a test
(``tests/trainable/test_names.py``) holds every registry's names equal to the ones here, so the
two cannot drift. timm's backbone names are read from its source: :mod:`trainable.backbone_names`.
"""

from __future__ import annotations

LOSSES = ("ce", "bce", "focal")  # trainable.losses.LOSSES
OPTIMIZERS = ("adam", "adamw", "sgd", "ranger")  # trainable.optim.OPTIMIZERS
SCHEDULERS = ("none", "exponential", "cosine", "cosine_warm_restarts")  # trainable.optim.build_scheduler
SAMPLERS = ("none", "oversample", "undersample", "weighted")  # trainable.sampling.SAMPLERS
COSTS = {"throughput": "max", "params": "min", "flops": "min"}  # trainable.cost: name -> the better direction
CUSTOM_BACKBONES = ("simple_cnn",)  # trainable.models: backbones that are not timm's

THRESHOLD_RULES = ("f1", "youden", "accuracy")  # trainable.decide: final.threshold by name
THRESHOLD_COUNTS = ("expected", "labels")  # trainable.decide: how a rule counts each cut
BALANCING = ("oversample", "undersample", "weighted")  # sampling strategies that train on equal classes

# A searched or fixed trainable setting that names a registry entry -> the names it may take.
NAMED_CHOICES = {"optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "loss": LOSSES, "sampling": SAMPLERS}
