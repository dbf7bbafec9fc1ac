"""One training epoch of a trial: its batches, its seeded randomness and its divergence check.

All randomness of epoch ``e`` (sampling order, augmentation, dropout) is drawn from generators
seeded with ``(seed, e)``, so a run resumed after epoch ``e - 1`` continues exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trainable.augment import augment
from trainable.device import SplitRows, batches
from trainable.sampling import epoch_indices
from trainable.trial import Trial


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s generators, from the trial's seed and the epoch alone."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def batch_slices(count: int, batch_size: int) -> list[slice]:
    """The training batches of an epoch of ``count`` samples: full batches only.

    A ragged last batch is dropped, so every step has one shape (cuDNN's benchmark mode tunes
    its kernels once a trial) and batch norm never sees a batch of one; the sampling order
    changes every epoch, so no sample is left out for good. Fewer than ``batch_size`` samples
    make one batch of all of them.
    """
    if count <= batch_size:
        return [slice(0, count)]
    return [slice(s, s + batch_size) for s in range(0, count - batch_size + 1, batch_size)]


def train_epoch(trial: Trial, images: torch.Tensor, labels: torch.Tensor, epoch: int,
                rows: torch.Tensor | None = None) -> float:
    """One pass over the training split in the sampling strategy's order.

    ``labels`` are the training labels (on the host). ``images`` are the training images, or,
    with ``rows`` (the training split's row numbers), the whole set, from which batches are
    gathered: concurrent trials then share one copy of the data (Ray's object store).

    Returns:
        The mean training loss, or NaN when a step's loss or, after the epoch, a weight is not
        finite: the trial diverged. Both are accumulated on the device and read once, at the
        end of the epoch, so the steps never wait for the device.
    """
    config, device = trial.config, trial.device
    seed = epoch_seed(config.seed, epoch)
    torch.manual_seed(seed)  # dropout and anything else drawing from torch's global generator
    generator = torch.Generator(device).manual_seed(seed)
    order = torch.from_numpy(epoch_indices(config.sampling, labels.numpy(), config.seed, epoch))
    trial.model.train()
    loss_sum = torch.zeros((), device=device)
    finite = torch.ones((), dtype=torch.bool, device=device)
    count = 0
    split = SplitRows(images, labels, rows)
    for x, y in batches(split, order, batch_slices(len(order), config.batch_size), device):
        if trial.augment.enabled:
            x = augment(x, trial.augment, generator)
        if device.type == "cuda" and config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=trial.autocast_dtype,
                            enabled=trial.autocast_dtype is not None):
            loss = trial.loss(trial.model(x), y)
        trial.optimizer.zero_grad(set_to_none=True)
        trial.scaler.scale(loss).backward()
        trial.scaler.step(trial.optimizer)
        trial.scaler.update()
        loss = loss.detach().float()
        loss_sum += loss * len(y)
        finite &= torch.isfinite(loss)
        count += len(y)
    if trial.scheduler is not None:
        trial.scheduler.step()
    finite &= parameters_finite(trial.model)
    total, ok = torch.stack([loss_sum, finite.float()]).tolist()  # the epoch's one sync
    return total / max(count, 1) if ok else math.nan


def parameters_finite(model: torch.nn.Module) -> torch.Tensor:
    """Whether every weight is finite, as a boolean tensor on the weights' device (no sync)."""
    return torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()
