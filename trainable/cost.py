"""What a trained model costs to run: the objectives a search can trade accuracy against.

* ``params``: the network's parameters (min);
* ``flops``: floating-point operations of one image's forward pass, counted by torch's
  ``FlopCounterMode`` at the trial's input size (2 per multiply-add; min);
* ``throughput``: inference images per second on the trial's own device, in evaluation mode with
  the trial's mixed precision and memory format, at a fixed batch size (``throughput_batch``);
  the fastest of ``torch.utils.benchmark``'s timed blocks, after warm-up batches that are not
  timed (max). The fastest, not the median, as ``timeit`` advises: trials packed on a node slow
  each other's timings, and the fastest block is the one least disturbed.

A trial measures the costs its search names once, before its first epoch, and reports them with
every epoch (they do not change as it trains); a resumed trial reads them from its checkpoint.
``throughput`` is a measurement on a shared machine: trials running beside it slow it, so two
trials of one architecture differ (BENCHMARKS.md, "Accuracy against inference cost"). FLOPs and
parameters are exact.
"""

from __future__ import annotations

import torch

from trainable.names import COSTS  # name -> the better direction

WARMUP_BATCHES = 2
MIN_TIMED_S = 0.5  # torch.utils.benchmark times blocks of batches for at least this long


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: torch.nn.Module, image_shape: tuple[int, int, int], device: torch.device) -> int:
    """FLOPs of one ``(C, H, W)`` image's forward pass in evaluation mode (torch's counter)."""
    from torch.utils.flop_counter import FlopCounterMode  # imported here: it warns on a host without CUDA

    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *image_shape, device=device))
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def images_per_second(model: torch.nn.Module, image_shape: tuple[int, int, int], device: torch.device,
                      batch_size: int = 64, autocast_dtype: torch.dtype | None = None,
                      channels_last: bool = False) -> float:
    """Inference throughput: ``batch_size`` images a forward pass, as a deployed model would
    run (evaluation mode, no gradients, the trial's autocast and memory format)."""
    from torch.utils import benchmark  # imported here: it warns on a host without CUDA

    was_training = model.training
    model.eval()
    x = torch.randn(batch_size, *image_shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def forward():
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            model(x)

    try:
        for _ in range(WARMUP_BATCHES):  # lazy initialisation, cuDNN's tuning: not timed
            forward()
        # Timer synchronises CUDA around each block.
        timer = benchmark.Timer("forward()", globals={"forward": forward}, num_threads=torch.get_num_threads())
        seconds = min(timer.blocked_autorange(min_run_time=MIN_TIMED_S).times)  # per batch, each block's mean
        return batch_size / seconds
    finally:
        model.train(was_training)


def measure(wanted, model: torch.nn.Module, image_shape: tuple[int, int, int], device: torch.device,
            batch_size: int = 64, autocast_dtype: torch.dtype | None = None,
            channels_last: bool = False) -> dict[str, float]:
    """The costs named in ``wanted`` (keys of :data:`COSTS`), measured once."""
    unknown = sorted(set(wanted) - set(COSTS))
    if unknown:
        raise ValueError(f"unknown costs {unknown}; known: {', '.join(COSTS)}")
    out: dict[str, float] = {}
    if "params" in wanted:
        out["params"] = float(count_params(model))
    if "flops" in wanted:
        out["flops"] = float(count_flops(model, image_shape, device))
    if "throughput" in wanted:
        out["throughput"] = images_per_second(model, image_shape, device, batch_size, autocast_dtype, channels_last)
    return out
