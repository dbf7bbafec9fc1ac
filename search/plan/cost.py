"""What a training step and a validated image cost, measured on the default configuration as a
trial would run it (:func:`measure`), and what an epoch costs at any image size from it (:class:`Cost`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from search.plan.rungs import steps_per_epoch
from search.space import Space, backbone_choices, default_config, largest_batch

IMAGE_SIZES = (96, 80, 64, 48, 32)  # what data.image_size: auto may shrink to, largest first

TRIAL_START_S = 3.0  # a trial's start: Ray schedules it, the model is built, the data placed

EPOCH_EXTRA_S = 0.3  # per epoch besides training and validation: the checkpoint, the report


@dataclass(frozen=True)
class Cost:
    """Measured seconds per training step and per validated image at ``image_size`` pixels (the
    set's native side), at the trial's batch size, averaged over the backbone choices; and, when
    the image size is ``auto``, the same at ``small_size``.

    Between (and beyond) the two sizes the cost is a line in the pixel count: a fixed part per
    step (the optimizer, Python, the augmentations' calls) and a part per pixel. With one size
    only, all of it is taken as per pixel, which prices a smaller size's epoch too cheap."""

    step_s: float
    val_image_s: float
    image_size: int
    small_step_s: float | None = None
    small_val_image_s: float | None = None
    small_size: int | None = None

    def _at(self, native: float, small: float | None, side: int) -> float:
        pixels = side * side
        if small is None or self.small_size is None or self.small_size >= self.image_size:
            return native * pixels / self.image_size ** 2
        slope = max(native - small, 0.0) / (self.image_size ** 2 - self.small_size ** 2)  # never cheaper larger
        return max(small + slope * (pixels - self.small_size ** 2), 0.0)

    def epoch_s(self, n_train: int, n_val: int, batch_size: int, image_size: int | None = None) -> float:
        side = image_size or self.image_size
        step = self._at(self.step_s, self.small_step_s, side)
        image = self._at(self.val_image_s, self.small_val_image_s, side)
        return steps_per_epoch(n_train, batch_size) * step + n_val * image + EPOCH_EXTRA_S


def image_sizes(native: int, auto: bool, floor: int | None = None) -> list[int | None]:
    """Candidate image sides, largest first: native (None) and, for ``auto``, the smaller ones,
    none under ``floor`` (``data.min_image_size``; the floor itself is a candidate)."""
    if not auto:
        return [None]
    smaller = [s for s in IMAGE_SIZES if s < native and (floor is None or s > floor)]
    if floor is not None and floor < native:
        smaller.append(floor)
    return [None] + smaller


def measure(space: Space, dataset, local: bool) -> Cost:
    """Time the default configuration (each backbone choice) as a trial would run it: the mean
    cost at the set's native size, and, when ``data.image_size`` is ``auto``, at the smallest
    size it may choose too (the smallest of :data:`IMAGE_SIZES`, or ``data.min_image_size``).

    ``local`` (Ray runs on this machine and a trial needs no GPU, or this process sees one): here,
    with the trial's CPUs as torch threads, so no worker has to start for it. Otherwise as a Ray
    task with a trial's resources, on a node the trials will use."""
    import ray
    import torch

    from trainable.train import time_training

    batch = largest_batch(space)
    native = max(dataset.image_shape)
    samples = [small_copy(dataset, batch)]
    small = image_sizes(native, True, space.min_image_size)[-1]
    if "image_size" in space.auto and small is not None:
        samples.append(resized(samples[0], small))
    cpus, gpus = space.resources.get("cpu", 1), space.resources.get("gpu", 0)
    configs = [{**default_config(space, b), "batch_size": batch, "epochs": 1, "threads": max(1, int(cpus))}
               for b in backbone_choices(space)]
    if local:
        threads = torch.get_num_threads()
        try:
            results = [[time_training(config, sample) for config in configs] for sample in samples]
        finally:
            torch.set_num_threads(threads)
    else:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus)(time_training)
        handles = [ray.put(sample) for sample in samples]
        results = [ray.get([task.remote(config, handle) for config in configs]) for handle in handles]

    def mean(part: list[dict], key: str) -> float:
        return sum(r[key] for r in part) / len(part)

    extra = {}
    if len(results) > 1:
        extra = {"small_step_s": mean(results[1], "step_s"), "small_val_image_s": mean(results[1], "val_image_s"),
                 "small_size": small}
    return Cost(mean(results[0], "step_s"), mean(results[0], "val_image_s"), native, **extra)


def resized(dataset, side: int):
    """``dataset`` with its images resized to ``side`` pixels, as the data layer resizes them."""
    import torch.nn.functional as F

    images = F.interpolate(dataset.images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return dataclasses.replace(dataset, images=images.contiguous())


def small_copy(dataset, batch_size: int, steps: int = 4):
    """A few batches of the set's training and validation rows: all that timing needs."""
    import numpy as np

    train = dataset.splits["train"][: steps * batch_size]
    val = dataset.splits["val"][: 2 * batch_size]
    rows = np.concatenate([train, val])
    return dataclasses.replace(
        dataset, images=dataset.images[rows].clone(), labels=dataset.labels[rows].clone(),
        files=tuple(dataset.files[i] for i in rows), metadata=None,
        splits={"train": np.arange(len(train)), "val": np.arange(len(train), len(rows)),
                "test": np.arange(0)})
