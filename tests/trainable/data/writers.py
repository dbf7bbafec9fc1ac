"""Writers of small data sets in each real on-disk layout.

Pixel (0, 0) of every image holds a tag (class index * 1000 + image number) and the rest is
noise, so tests can check that each image kept its own label and file after loading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image


def tagged_image(tag: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    image = rng.random(shape, dtype=np.float32)
    image[(0,) * len(shape)] = tag
    return image


def write_npy_folders(root: Path, counts: dict[str, dict[str, int]], shape=(1, 12, 12),
                      seed: int = 0) -> Path:
    """``root/<split>/<class>/<n>.npy`` for each split and class count; ``split`` '' = flat."""
    rng = np.random.default_rng(seed)
    classes = sorted({c for per_split in counts.values() for c in per_split})
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            folder = root / split / cls if split else root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                np.save(folder / f"{i}.npy", tagged_image(classes.index(cls) * 1000 + i, shape, rng))
    return root


def write_prefixed_npy(root: Path, counts: dict[str, int], shape=(3, 8, 8), seed: int = 0) -> Path:
    """The later DeepLense layout: ``root/{train,test}_<class>/<n>.npy``."""
    rng = np.random.default_rng(seed)
    for folder, n in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            np.save(root / folder / f"{i}.npy", rng.random(shape, dtype=np.float32))
    return root


def write_fits_csv(root: Path, labels: list[int], size: int = 16, seed: int = 0,
                   first_id: int = 100000) -> Path:
    """The Bologna layout: ``classifications.csv`` + ``files/imageEUC_VIS-<ID>.fits``."""
    rng = np.random.default_rng(seed)
    (root / "files").mkdir(parents=True, exist_ok=True)
    rows = ["ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma"]
    for i, label in enumerate(labels):
        image_id = first_id + i
        tag = label * 1000 + i
        fits.PrimaryHDU(tagged_image(tag, (size, size), rng)).writeto(
            root / "files" / f"imageEUC_VIS-{image_id}.fits")
        rows.append(f"{image_id},{label},{0.5 * label + 0.01 * i:.3f},{40 * label + i},{3.5 * i:.2f}")
    (root / "classifications.csv").write_text("\n".join(rows) + "\n")
    return root


def write_png(path: Path, array: np.ndarray) -> None:
    """Save a [0, 1] float (H, W) or (H, W, 3) array as an 8-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8)).save(path)


def write_image_folders(root: Path, counts: dict[str, int], size: int = 10, rgb: bool = True,
                        seed: int = 0) -> Path:
    """``root/<class>/<n>.png``."""
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if rgb else (size, size)
    for cls, n in counts.items():
        for i in range(n):
            write_png(root / cls / f"img_{i}.png", rng.random(shape))
    return root


def write_csv_images(root: Path, labels: list[str], size: int = 8, seed: int = 0) -> Path:
    """The Kaggle CIFAR-10 layout: ``trainLabels.csv`` (id,label) + ``train/<id>.png``."""
    rng = np.random.default_rng(seed)
    rows = ["id,label"]
    for i, label in enumerate(labels, start=1):
        write_png(root / "train" / f"{i}.png", rng.random((size, size, 3)))
        rows.append(f"{i},{label}")
    (root / "trainLabels.csv").write_text("\n".join(rows) + "\n")
    return root


def write_split_tables(root: Path, labels: dict[str, list[int]], size: int = 8, seed: int = 0) -> Path:
    """The generated-images contest layout: ``<split>.csv`` (Image,Class) + ``<split>_images/<name>.png``
    per shipped split. Pixel (0, 0) of the red channel holds the image's class / 100."""
    rng = np.random.default_rng(seed)
    for split, split_labels in labels.items():
        rows = ["Image,Class"]
        for i, label in enumerate(split_labels):
            name = f"{split[0]}{i:05d}{rng.integers(1 << 30):x}.png"
            image = rng.random((size, size, 3))
            image[0, 0, 0] = label / 100
            write_png(root / f"{split}_images" / name, image)
            rows.append(f"{name},{label}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root
