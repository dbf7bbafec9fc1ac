"""Is the embedded simulator's data learnable, but not trivially? And how fast is it?

Usage:
    python benchmarks/simulator_learnability.py [--n-lens 3000] [--n-sub 3000] [--minutes 2]
        [--seed 0] [--workers W] [--keep DIR]

For each kind, simulates a set with ``trainable.simulate`` (timed: images/s on every core),
reads it back from its on-disk layout, makes a stratified 80/20 split, trains a small plain
PyTorch CNN on the CPU for ``--minutes`` with random flips and 90-degree rotations (a real
symmetry of the data) and a cosine learning-rate decay over that time, and prints validation
accuracy and ROC AUC (macro one-vs-rest for the three substructure classes) after every epoch
and at the end.

Lens-finding cutouts are scaled per image by arcsinh(image / noise), the noise estimated from the
median absolute deviation; substructure images (already in [0, 1]) are average-pooled 2x2 to
75x75 for speed. The truth columns of ``classifications.csv`` other than ``is_lens`` are not read.
Targets the simulator is tuned for: lens finding AUC about 0.75-0.95, substructure macro AUC
about 0.6-0.9 after a few minutes: well above chance, well below perfect.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainable.simulate import simulate  # noqa: E402
from trainable.simulate.substructure import CLASSES as SUBSTRUCTURE_CLASSES  # noqa: E402


def load_lens_finding(root: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(root / "classifications.csv") as handle:
        rows = list(csv.DictReader(handle))
    images = np.stack([fits.getdata(root / "files" / f"imageEUC_VIS-{row['ID']}.fits")
                       for row in rows]).astype(np.float32)
    centred = images - np.median(images, axis=(1, 2), keepdims=True)
    noise = 1.4826 * np.median(np.abs(centred), axis=(1, 2), keepdims=True)
    return np.arcsinh(centred / noise)[:, None], np.array([int(r["is_lens"]) for r in rows])


def load_substructure(root: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for split in ("train", "val"):
        for label, name in enumerate(SUBSTRUCTURE_CLASSES):
            for path in sorted((root / split / name).glob("*.npy")):
                images.append(np.load(path))
                labels.append(label)
    pooled = nn.functional.avg_pool2d(torch.from_numpy(np.stack(images)), 2)
    return pooled.numpy(), np.array(labels)


def small_cnn(num_classes: int) -> nn.Module:
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64), *block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def dihedral(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    k = int(torch.randint(4, (1,), generator=generator))
    batch = torch.rot90(batch, k, dims=(2, 3))
    return torch.flip(batch, dims=(3,)) if torch.rand(1, generator=generator) < 0.5 else batch


def evaluate(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        probs = torch.cat([model(x[i:i + 256]).softmax(1) for i in range(0, len(x), 256)])
    probs = probs.numpy()
    auc = (roc_auc_score(y, probs[:, 1]) if probs.shape[1] == 2
           else roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    return accuracy_score(y, probs.argmax(1)), auc


def train(images: np.ndarray, labels: np.ndarray, seconds: float, seed: int) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=0.2,
                                          stratify=labels, random_state=seed)
    x_train, y_train = torch.from_numpy(images[train_idx]), torch.from_numpy(labels[train_idx])
    x_val = torch.from_numpy(images[val_idx])
    num_classes = int(labels.max()) + 1
    model = small_cnn(num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    start, epoch, history = time.perf_counter(), 0, []
    while time.perf_counter() - start < seconds:
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order), 64):
            # Cosine decay over the time budget, so the last epochs settle rather than swing.
            progress = min(1.0, (time.perf_counter() - start) / seconds)
            for group in optimizer.param_groups:
                group["lr"] = 2e-3 * 0.5 * (1 + np.cos(np.pi * progress))
            batch = order[i:i + 64]
            loss = nn.functional.cross_entropy(model(dihedral(x_train[batch], generator)),
                                               y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epoch += 1
        accuracy, auc = evaluate(model, x_val, labels[val_idx])
        history.append((accuracy, auc))
        print(f"  epoch {epoch:2d}  {time.perf_counter() - start:5.0f} s  loss {loss.item():.3f}  "
              f"val acc {accuracy:.3f}  val AUC {auc:.3f}", flush=True)
    return {"epochs": epoch, "accuracy": history[-1][0], "auc": history[-1][1],
            "best_auc": max(auc for _, auc in history), "n_train": len(train_idx),
            "n_val": len(val_idx), "chance": float(np.bincount(labels[val_idx]).max()
                                                   / len(val_idx))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-lens", type=int, default=3000)
    parser.add_argument("--n-sub", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=2.0, help="training time per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the sets under this folder and keep them (default: temporary)")
    args = parser.parse_args()
    summary = []
    with tempfile.TemporaryDirectory() as scratch:
        base = args.keep or Path(scratch)
        for kind, n, loader in (("lens_finding", args.n_lens, load_lens_finding),
                                ("substructure", args.n_sub, load_substructure)):
            start = time.perf_counter()
            root = simulate(kind, base / kind, n=n, seed=args.seed, workers=args.workers)
            rate = n / (time.perf_counter() - start)
            images, labels = loader(root)
            print(f"{kind}: simulated {n} images at {rate:.0f} images/s; classes "
                  f"{np.bincount(labels).tolist()}; training {args.minutes} min", flush=True)
            result = train(images, labels, 60 * args.minutes, args.seed)
            summary.append((kind, rate, result))
    print("\nkind           images/s  train/val   epochs  chance  val_acc  val_AUC  best_AUC")
    for kind, rate, r in summary:
        print(f"{kind:14s} {rate:8.0f}  {r['n_train']:5d}/{r['n_val']:<4d}  {r['epochs']:6d}  "
              f"{r['chance']:6.3f}  {r['accuracy']:7.3f}  {r['auc']:7.3f}  {r['best_auc']:8.3f}")


if __name__ == "__main__":
    main()
