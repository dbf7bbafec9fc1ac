"""Where one trial computes and where its data lives.

    threads = trial_cpus()                       # Ray's CPU resources, else this process's CPUs
    dtype = autocast_dtype(True, "cuda", bf16_native())
    resident, line = data_placement(need, "cuda", total_memory, trial_gpu_fraction())
    split = place_split(dataset.images, dataset.labels, rows, device, resident)
    for x, y in batches(split, order, slices, device): ...

Each rule (threads, mixed precision, whether the rows go to the GPU once) is a pure function of
what it is given, so it is tested on a machine without a GPU; only the streamed path of
:func:`batches` needs CUDA to run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch

DATA_SHARE = 0.5
"""Fraction of a trial's share of GPU memory (total memory x its Ray ``GPU`` fraction) that its
train and val rows may take to be copied to the GPU once. The other half is left for what the
trial needs besides the data: the CUDA context, the weights with their gradients and optimizer
state (three more copies of the weights with Adam), cuDNN workspaces and a batch's activations,
which grow with the backbone, the image size and the batch size. A guess, not a measurement: to
revise with ``benchmarks/gpu_throughput.py`` on a GPU. Rows that do not fit are streamed a
batch at a time instead: slower, never out of memory."""


@dataclass
class SplitRows:
    """One split as the training loop reads it: batch ``i`` is ``images[rows[order[i]]]``.

    Attributes:
        images: The split's own images on the trial's device, or the whole set on the host
            (shared by every trial on the node: Ray's object store).
        labels: The split's labels, on the host (the sampling strategies read them there).
        rows: The split's row numbers into a host-side whole set; None when ``images`` is the
            split itself.
    """

    images: torch.Tensor
    labels: torch.Tensor
    rows: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.labels)


def autocast_dtype(amp: bool, device_type: str, bf16_native: bool) -> torch.dtype | None:
    """The autocast dtype of a trial, or None for float32.

    Args:
        amp: The trial's ``amp`` setting.
        device_type: ``cuda`` or ``cpu``; mixed precision is used on CUDA only.
        bf16_native: Whether the GPU computes bfloat16 natively (see :func:`bf16_native`).

    Returns:
        bfloat16 where native (same range as float32: no loss scaling needed); else float16,
        which needs a GradScaler; None without ``amp`` or off CUDA.
    """
    if not amp or device_type != "cuda":
        return None
    return torch.bfloat16 if bf16_native else torch.float16


def bf16_native() -> bool:
    """Whether this process's GPU computes bfloat16 natively (Ampere and later).

    torch's default also counts emulation, which says True on a T4 where bfloat16 runs slowly.
    """
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def _ray_resources() -> dict[str, float] | None:
    """The resources Ray assigned to this process; None outside a Ray worker."""
    try:
        import ray

        if ray.is_initialized():
            return dict(ray.get_runtime_context().get_assigned_resources())
    except Exception:  # Ray's driver process raises: it is no worker
        pass
    return None


def trial_cpus() -> int:
    """CPUs Ray gave this trial, else the CPUs this process may use.

    Used for torch's threads on GPU trials too: trials packed on one node must not each use
    every core.
    """
    resources = _ray_resources()
    if resources is not None:
        return max(1, int(resources.get("CPU", 1)))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def trial_gpu_fraction() -> float:
    """The fraction of its GPU Ray gave this trial (``trial.resources.gpu``), else 1."""
    resources = _ray_resources() or {}
    return float(resources.get("GPU") or 1.0)


def data_placement(need_bytes: int, device_type: str, total_memory: int | None,
                   gpu_fraction: float, share: float = DATA_SHARE) -> tuple[bool, str]:
    """Whether a trial's train and val rows go to its GPU once, and one line saying so.

    They do when ``need_bytes <= total_memory * gpu_fraction * share``: the trial's share of its
    GPU, less what the model and its activations need (see :data:`DATA_SHARE`). Batches are
    then indexed on the GPU; otherwise each batch is gathered on the host and copied from
    pinned memory, one batch ahead.

    Args:
        need_bytes: Bytes of the train and val images and labels.
        device_type: ``cuda`` or ``cpu``; on the CPU the rows stay where they are.
        total_memory: The GPU's memory in bytes (None off CUDA).
        gpu_fraction: The trial's fraction of the GPU (:func:`trial_gpu_fraction`).
        share: The part of the trial's share the data may take.

    Returns:
        ``(resident, line)``: True when the rows go to the GPU, and a line for the log.
    """
    mib = need_bytes / 2**20
    if device_type != "cuda" or total_memory is None:
        return False, f"data: {mib:.1f} MiB of train and val rows read from host memory (CPU)"
    room = total_memory * gpu_fraction * share
    where = (f"{mib:.1f} MiB of train and val rows, room {room / 2**20:.0f} MiB "
             f"({total_memory / 2**30:.1f} GiB x GPU fraction {gpu_fraction:g} x {share:g})")
    if need_bytes <= room:
        return True, f"data: on the GPU once, batches indexed there: {where}"
    return False, f"data: streamed from pinned host memory, one batch ahead: {where}"


def split_bytes(images: torch.Tensor, labels: torch.Tensor, *rows: torch.Tensor) -> int:
    """Bytes the images and labels of ``rows`` (one tensor of row numbers a split) take."""
    count = sum(len(r) for r in rows)
    per_row = images[0].numel() * images.element_size() + labels.element_size()
    return count * per_row


def place_split(images: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor,
                device: torch.device, resident: bool, chunk: int = 4096) -> SplitRows:
    """One split, copied to ``device`` when ``resident``, else as row numbers into ``images``.

    The copy goes ``chunk`` rows at a time, so the host never holds a second copy of a split
    (several trials share the node's one copy of the data set).
    """
    split_labels = labels[rows]
    if not resident:
        return SplitRows(images, split_labels, rows)
    out = torch.empty((len(rows), *images.shape[1:]), dtype=images.dtype, device=device)
    for start in range(0, len(rows), chunk):
        out[start:start + chunk] = images[rows[start:start + chunk]].to(device)
    return SplitRows(out, split_labels, None)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; from the host through pinned memory, so the copy does not block.

    (A non_blocking copy from pageable memory is synchronous.)
    """
    if x.device.type == device.type:
        return x
    if device.type == "cuda":
        x = x.pin_memory()
    return x.to(device, non_blocking=True)


def batches(split: SplitRows, order: torch.Tensor, slices: list[slice],
            device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(images, labels)`` batches ``split[order[s]]`` for each of ``slices``, on ``device``.

    Indexed where the images are when they are on ``device`` (no copy at all); streamed from
    the host otherwise (:func:`_streamed`). No host-device synchronization either way.
    """
    if split.images.device.type == device.type:
        return _indexed(split, order, slices)
    return _streamed(split, order, slices, device)


def _indexed(split: SplitRows, order: torch.Tensor,
             slices: list[slice]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    where = split.images.device
    order, labels = order.to(where), split.labels.to(where)  # once an epoch, not a batch
    for s in slices:
        index = order[s]
        yield split.images[index if split.rows is None else split.rows[index]], labels[index]


def _streamed(split: SplitRows, order: torch.Tensor, slices: list[slice],
              device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches gathered on the host into pinned memory and copied on a side stream, one batch
    ahead: the copy of batch ``i + 1`` overlaps the compute of batch ``i``."""
    copy_stream = torch.cuda.Stream(device)

    def load(s: slice) -> tuple[torch.Tensor, torch.Tensor]:
        index = order[s]
        host = (split.images[index if split.rows is None else split.rows[index]].pin_memory(),
                split.labels[index].pin_memory())
        with torch.cuda.stream(copy_stream):
            return tuple(t.to(device, non_blocking=True) for t in host)

    pending = load(slices[0]) if slices else None
    for i in range(len(slices)):
        compute = torch.cuda.current_stream(device)
        compute.wait_stream(copy_stream)  # batch i has arrived before the compute reads it
        batch, pending = pending, load(slices[i + 1]) if i + 1 < len(slices) else None
        for t in batch:
            t.record_stream(compute)  # the allocator keeps it until the compute is done with it
        yield batch


def release(device: torch.device) -> None:
    """Give the trial's cached GPU memory back, for the next trial on the GPU."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
