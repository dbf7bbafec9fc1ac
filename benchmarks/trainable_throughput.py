"""Training throughput of the trainable against a bare PyTorch loop, and the cost of augmentation.

Usage:
    python benchmarks/trainable_throughput.py [--backbone resnet18] [--images 1024] [--size 64]
                                              [--batch-size 64] [--threads N] [--repeats 3]

Same timm backbone, same in-memory data (random 1-channel images, 2 classes), same batch size,
optimizer (Adam) and threads for every row; each round runs every row, in reversed order every
other round, and the median of ``--repeats`` rounds is kept, so a noisy shared machine and
warm-up effects affect the rows alike. Rows:
  bare          a plain loop: index a batch, forward, cross-entropy, backward, Adam step;
  train_epoch   ``trainable.train.train_epoch``, no augmentation: the ratio the issue targets;
  + flip/rot90  with lossless augmentations (flips, 90-degree rotations);
  + rotate/shift  with arbitrary rotations and shifts (one grid_sample per batch);
  train (epoch) ``trainable.train.train`` for one epoch: training plus validation on a 20 %
                split and the checkpoint, images/s counted over training images only.
On CUDA (where there is one) the trainable uses bf16 autocast and channels_last; the bare loop
runs float32 as written, so the GPU ratio also shows what mixed precision buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from trainable.report import LocalReporter  # noqa: E402
from trainable.train import setup, train, train_epoch  # noqa: E402


def make_dataset(n: int, size: int, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.random((n, 1, size, size), dtype=np.float32))
    labels = torch.from_numpy(rng.integers(0, 2, n))
    cut = int(0.8 * n)
    return ImageDataset(images=images, labels=labels, class_names=("a", "b"),
                        splits={"train": np.arange(cut), "val": np.arange(cut, n),
                                "test": np.arange(0)},
                        files=tuple(str(i) for i in range(n)))


def bare_epoch(backbone: str, x: torch.Tensor, y: torch.Tensor, batch_size: int,
               device: torch.device, seed: int) -> float:
    torch.manual_seed(seed)
    model = timm.create_model(backbone, num_classes=2, in_chans=x.shape[1]).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(x))
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        index = order[i:i + batch_size]
        xb, yb = x[index].to(device), y[index].to(device)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - start)


def trainable_epoch(config: dict, dataset: ImageDataset) -> float:
    trial = setup(TrainConfig.from_mapping(config), dataset)
    x, y = dataset.split("train")
    start = time.perf_counter()
    train_epoch(trial, x, y, epoch=0)
    if trial.device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - start)


def full_epoch(config: dict, dataset: ImageDataset) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        train({**config, "epochs": 1}, dataset, LocalReporter(folder))
        return len(dataset.splits["train"]) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--images", type=int, default=1280)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    dataset = make_dataset(args.images, args.size)
    x, y = dataset.split("train")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = {"backbone": args.backbone, "batch_size": args.batch_size, "threads": args.threads,
            "optimizer": "adam", "lr": 1e-3}
    rows = {
        "bare": lambda: bare_epoch(args.backbone, x, y, args.batch_size, device, 0),
        "train_epoch": lambda: trainable_epoch(base, dataset),
        "+ flip/rot90": lambda: trainable_epoch({**base, "augment_flip": True,
                                                 "augment_rot90": True}, dataset),
        "+ rotate/shift": lambda: trainable_epoch({**base, "augment_rotate": 180.0,
                                                   "augment_translate": 0.05}, dataset),
        "train (epoch)": lambda: full_epoch(base, dataset),
    }
    for fn in rows.values():  # warm-up: allocator, kernels, lazy imports
        fn()
    samples = {name: [] for name in rows}
    for round_ in range(args.repeats):
        # Whichever row runs first after another row's teardown runs colder (allocator, caches):
        # reversing the order every other round gives each row each position equally often.
        order = list(rows) if round_ % 2 == 0 else list(rows)[::-1]
        for name in order:
            samples[name].append(rows[name]())
    rate = {name: statistics.median(v) for name, v in samples.items()}
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"\n{args.backbone}, {len(x)} training images of 1x{args.size}x{args.size}, batch "
          f"{args.batch_size}, {where}; median of {args.repeats}")
    print(f"{'row':<16}{'images/s':>10}{'vs bare':>9}")
    for name, value in rate.items():
        print(f"{name:<16}{value:>10.1f}{value / rate['bare']:>9.3f}")


if __name__ == "__main__":
    main()
