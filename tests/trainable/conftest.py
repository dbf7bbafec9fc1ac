import numpy as np
import pytest
import torch

from trainable.data import ImageDataset, load_dataset


def digits_subset(classes: tuple[int, ...], keep: dict[int, float] | None = None,
                  seed: int = 0) -> ImageDataset:
    """scikit-learn's digits restricted to ``classes`` (upsampled to 16x16), optionally thinned
    per class (``keep``: class -> fraction kept) to make an imbalanced set."""
    full = load_dataset({"format": "digits", "image_size": 16, "seed": seed})
    labels = full.labels.numpy()
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), bool)
    for c in classes:
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.random(len(idx)) < (keep or {}).get(c, 1.0)]
        chosen[idx] = True
    position = np.cumsum(chosen) - 1
    remap = {c: i for i, c in enumerate(classes)}
    splits = {k: position[v[chosen[v]]] for k, v in full.splits.items()}
    new_labels = torch.tensor([remap[int(y)] for y in labels[chosen]])
    return ImageDataset(images=full.images[torch.from_numpy(chosen)], labels=new_labels,
                        class_names=tuple(str(c) for c in classes), splits=splits,
                        files=tuple(f for f, k in zip(full.files, chosen) if k),
                        normalization=full.normalization, source=full.source)


@pytest.fixture(scope="session")
def three_digits():
    return digits_subset((0, 1, 7))


@pytest.fixture(scope="session")
def imbalanced_pair():
    """Binary and imbalanced like the Bologna set: digits 0-6 against 7-9, 2.34 : 1."""
    full = load_dataset({"format": "digits", "image_size": 16})
    grouped = (full.labels >= 7).long()
    return ImageDataset(images=full.images, labels=grouped, class_names=("0-6", "7-9"),
                        splits=full.splits, files=full.files, normalization=full.normalization,
                        source=full.source)
