"""Training throughput of trials on a GPU: precision, memory format, and trials packed on one GPU.

Usage:
    python benchmarks/gpu_throughput.py [--models resnet18 efficientnet_b0 efficientnet_b4]
        [--sizes 64 101] [--batch-size 64] [--steps 50] [--repeats 3] [--packs 1 2 4]
    python benchmarks/gpu_throughput.py --smoke   # tiny, on CPU: the benchmark's own test

For every model and image size, on random 1-channel images in 2 classes, with Adam, training
images per second of these rows, each against ``bare`` measured in the same run:
  bare             a plain float32 loop (data on the device, index a batch, forward, cross-entropy,
                   backward, Adam step; no host-device sync until the end): the baseline;
  fp32             ``trainable.train.train_epoch`` with amp and channels_last off;
  bf16             with amp: bfloat16 where the GPU has it natively, else float16 with loss
                   scaling (the header names the dtype);
  bf16 + cl        with amp and channels_last: what a trial runs by default;
  packed k x 1/k   k trials (k of ``--packs``) as separate processes sharing the GPU, each with
                   GPU fraction 1/k and 1/k of the CPUs (as Ray packs ``gpu: 1/k`` trials), in
                   bf16 + cl: aggregate images/s, all images over the span from the first
                   start to the last end of their timed epochs (started together after a
                   warm-up epoch each).
Every trainable row places its data as ``train()`` does (on the GPU once when it fits the
trial's share). Each row's rate is one timed epoch of ``--steps`` batches after a warm-up epoch;
the median of ``--repeats`` rounds is kept, the rows running in reversed order every other
round. ``--smoke`` runs one tiny timm model at 32 px, 16 steps, fp32 only, a pack of 2, one
thread: on a CPU its figures are noise; it checks that every row runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import timm  # noqa: E402

from trainable.config import TrainConfig  # noqa: E402
from trainable.data import ImageDataset  # noqa: E402
from trainable.device import autocast_dtype, bf16_native  # noqa: E402
from trainable.train import batch_slices, place_data, setup, train_epoch  # noqa: E402

PRECISIONS = {"fp32": {"amp": False, "channels_last": False},
              "bf16": {"amp": True, "channels_last": False},
              "bf16 + cl": {"amp": True, "channels_last": True}}


def make_dataset(n: int, size: int, seed: int = 0) -> ImageDataset:
    """``n`` random 1-channel images, all in the training split (a few also for validation)."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.random((n, 1, size, size), dtype=np.float32))
    return ImageDataset(images=images, labels=torch.from_numpy(rng.integers(0, 2, n)),
                        class_names=("a", "b"), files=tuple(str(i) for i in range(n)),
                        splits={"train": np.arange(n), "val": np.arange(min(n, 64)),
                                "test": np.arange(0)})


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_rate(model_name: str, dataset: ImageDataset, batch_size: int) -> float:
    """Images/s of a plain float32 loop over the data, on the device, after a warm-up epoch."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=2, in_chans=1).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = dataset.images.to(device), dataset.labels.to(device)
    slices = batch_slices(len(x), batch_size)

    def epoch() -> float:
        synchronize(device)
        start = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for s in slices:
            index = order[s]
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        return len(slices) * batch_size / (time.perf_counter() - start)

    epoch()  # warm-up: allocator, kernels, cuDNN's choice of algorithms
    return epoch()


def timed_epoch(config: dict, dataset: ImageDataset, gpu_fraction: float = 1.0,
                before_timing=lambda: None) -> tuple[float, float, int]:
    """``(start, end, images)`` of one epoch of ``train_epoch`` (wall clock), after a warm-up
    epoch; ``before_timing`` runs in between."""
    trial = setup(TrainConfig.from_mapping(config), dataset)
    trial.gpu_fraction = gpu_fraction  # as Ray would assign it to a packed trial
    with contextlib.redirect_stdout(io.StringIO()):  # place_data's line, once per row otherwise
        split, _ = place_data(trial, dataset)
    train_epoch(trial, split.images, split.labels, 0, rows=split.rows)
    before_timing()
    synchronize(trial.device)
    start = time.time()
    train_epoch(trial, split.images, split.labels, 1, rows=split.rows)  # ends with a sync
    images = len(batch_slices(len(split), trial.config.batch_size)) * trial.config.batch_size
    return start, time.time(), images


def worker(spec: dict) -> None:
    """One packed trial: waits for the others after its warm-up, prints its timed epoch."""
    dataset = make_dataset(spec["images"], spec["size"])

    def barrier() -> None:  # every trial of the pack starts timing together
        Path(spec["ready"], str(os.getpid())).touch()
        while len(os.listdir(spec["ready"])) < spec["pack"]:
            time.sleep(0.01)

    start, end, images = timed_epoch(spec["config"], dataset, 1 / spec["pack"], barrier)
    print(json.dumps({"start": start, "end": end, "images": images}))


def packed_rate(pack: int, config: dict, images: int, size: int) -> float:
    """Aggregate images/s of ``pack`` trials in separate processes on one GPU, each with its
    share of ``config["threads"]``."""
    with tempfile.TemporaryDirectory() as ready:
        threads = max(1, config["threads"] // pack)
        spec = {"config": {**config, "threads": threads}, "images": images, "size": size,
                "pack": pack, "ready": ready}
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(pack)]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a packed trial failed")
    span = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    return sum(o["images"] for o in outs) / span


def rows_for(model: str, size: int, args: argparse.Namespace) -> dict:
    """The benchmark's rows for one model and size: name -> function giving images/s."""
    images = args.steps * args.batch_size
    dataset = make_dataset(images, size)
    base = {"backbone": model, "batch_size": args.batch_size, "optimizer": "adam", "lr": 1e-3,
            "threads": args.threads}
    precisions = {"fp32": PRECISIONS["fp32"]} if args.smoke else PRECISIONS
    packed = {**base, **precisions[list(precisions)[-1]]}

    def trainable(config: dict):
        def rate() -> float:
            start, end, count = timed_epoch(config, dataset)
            return count / (end - start)
        return rate

    rows = {"bare": lambda: bare_rate(model, dataset, args.batch_size)}
    rows.update({name: trainable({**base, **p}) for name, p in precisions.items()})
    rows.update({f"packed {k} x {1 / k:g}": (lambda k=k: packed_rate(k, packed, images, size))
                 for k in args.packs})
    return rows


def measure(rows: dict, repeats: int) -> dict[str, float]:
    """Median images/s of each row over ``repeats`` rounds, in reversed order every other round
    (whichever row runs first after another's teardown runs colder)."""
    samples = {name: [] for name in rows}
    for round_ in range(repeats):
        for name in (list(rows) if round_ % 2 == 0 else list(rows)[::-1]):
            samples[name].append(rows[name]())
    return {name: statistics.median(v) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "efficientnet_b0", "efficientnet_b4"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 101])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="batches in a timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--packs", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--smoke", action="store_true", help="tiny, CPU-sized: the script's test")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.smoke:
        args.models, args.sizes, args.batch_size, args.steps = ["test_resnet"], [32], 8, 16
        args.repeats, args.packs, args.threads = 1, [2], 1  # threads: CI machines are small
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    where = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} threads"
    amp = autocast_dtype(True, "cuda", bf16_native()) if cuda else None
    for model in args.models:
        for size in args.sizes:
            rate = measure(rows_for(model, size, args), args.repeats)
            print(f"\n{model} at {size} px, batch {args.batch_size}, {args.steps} steps; {where}; "
                  f"amp dtype {amp}; median of {args.repeats}")
            print(f"{'row':<16}{'images/s':>10}{'vs bare':>9}")
            for name, value in rate.items():
                print(f"{name:<16}{value:>10.1f}{value / rate['bare']:>9.3f}")


if __name__ == "__main__":
    main()
