"""Stratified, reproducible train/val/test index splits (scikit-learn's ``train_test_split``)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from trainable.errors import DataError

SPLITS = ("train", "val", "test")


def _carve(pool: np.ndarray, labels: np.ndarray, size: int, seed: int,
           name: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``size`` indices off ``pool``, stratified by label; returns (rest, carved)."""
    if size == 0:
        return pool, pool[:0]
    try:
        rest, carved = train_test_split(pool, test_size=size, random_state=seed, shuffle=True,
                                        stratify=labels[pool])
    except ValueError as err:
        raise DataError(f"cannot carve a stratified {size}-image {name} split from "
                        f"{len(pool)} images: {err}; lower data.{name}_fraction or add images") from None
    return np.sort(rest), np.sort(carved)


def make_splits(labels: np.ndarray, split_of: np.ndarray | None, val_fraction: float,
                test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Index arrays for ``train``, ``val`` and ``test``.

    Splits the data set ships (``split_of``) are kept. A missing test split is carved from the
    training images, then a missing validation split; each takes its fraction of the pool it is
    carved from (the whole set when nothing was shipped), stratified by class, seeded. A carved
    split holds at least one image of each class, so its metrics (ROC AUC) are defined.

    Args:
        labels: Integer label of each image.
        split_of: ``"train"``, ``"val"``, ``"test"`` or ``""`` (unassigned, meaning train) per
            image, or None when the set ships no splits.
        val_fraction: Fraction for a carved validation split.
        test_fraction: Fraction for a carved test split.
        seed: Seed; the same seed gives the same indices.
    """
    n = len(labels)
    if split_of is None:
        split_of = np.full(n, "", dtype=object)
    shipped = {name: np.flatnonzero(split_of == name) for name in ("val", "test")}
    pool = np.flatnonzero((split_of == "train") | (split_of == ""))
    pool_size = len(pool)
    splits = {}
    for name, fraction in (("test", test_fraction), ("val", val_fraction)):
        if len(shipped[name]):
            splits[name] = shipped[name]
        else:
            size = round(fraction * pool_size)
            if size:
                size = max(size, len(np.unique(labels[pool])))
            pool, splits[name] = _carve(pool, labels, size, seed, name)
    splits["train"] = pool
    return {name: splits[name] for name in SPLITS}
