"""Pixel normalizations, applied in place to an (N, C, H, W) float32 array.

``minmax`` and ``asinh`` work per image and need no statistics. ``standardize`` learns per-channel statistics
on the training split only (scikit-learn's ``StandardScaler``, fed in chunks so a large set is not
copied), then applies them to every split, so no information leaks from validation or test images.
The returned record is what a later prediction needs to normalize new images the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.stats import mad_std
from sklearn.preprocessing import StandardScaler

_CHUNK = 1024  # images per step: bounds the temporary memory of large sets


def minmax_(images: np.ndarray) -> None:
    """Scale each image to [0, 1] over all its pixels; a constant image becomes zeros."""
    for start in range(0, len(images), _CHUNK):
        block = images[start:start + _CHUNK]
        low = block.min(axis=(1, 2, 3), keepdims=True)
        span = block.max(axis=(1, 2, 3), keepdims=True) - low
        block -= low
        np.divide(block, span, out=block, where=span > 0)


def asinh_(images: np.ndarray) -> None:
    """An asinh stretch per image and channel (Lupton et al. 1999): subtract the median, divide by
    the noise (1.4826 x the median absolute deviation: a cutout is mostly sky), take arcsinh, then
    scale each image to [0, 1]. Faint arcs next to a bright lens galaxy keep their contrast, unlike ``minmax``."""
    for start in range(0, len(images), _CHUNK):
        block = images[start:start + _CHUNK]
        flat = block.reshape(block.shape[0] * block.shape[1], -1)  # a view: changed in place
        median = np.median(flat, axis=1, keepdims=True)
        flat -= median
        noise = mad_std(flat, axis=1)[:, None]  # 1.4826 x median absolute deviation
        noise[noise <= 0] = 1.0  # a constant or noiseless image: plain arcsinh
        np.divide(flat, noise, out=flat)
        np.arcsinh(flat, out=flat)
    minmax_(images)


def channel_stats(images: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over the images at ``indices``."""
    scaler = StandardScaler()
    for start in range(0, len(indices), _CHUNK):
        block = images[indices[start:start + _CHUNK]]
        scaler.partial_fit(block.transpose(0, 2, 3, 1).reshape(-1, block.shape[1]))
    return scaler.mean_, scaler.scale_


def standardize_(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """Subtract ``mean`` and divide by ``std`` per channel."""
    shift = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    scale = np.asarray(std, dtype=np.float32)[None, :, None, None]
    for start in range(0, len(images), _CHUNK):
        block = images[start:start + _CHUNK]
        block -= shift
        block /= scale


def normalize_(images: np.ndarray, method: str, train_indices: np.ndarray) -> dict[str, Any]:
    """Normalize ``images`` in place; return the record that reproduces it on new images."""
    if method == "minmax":
        minmax_(images)
        return {"method": "minmax"}
    if method == "asinh":
        asinh_(images)
        return {"method": "asinh"}
    if method == "standardize":
        mean, std = channel_stats(images, train_indices)
        standardize_(images, mean, std)
        return {"method": "standardize", "mean": mean.tolist(), "std": std.tolist()}
    if method == "none":
        return {"method": "none"}
    raise ValueError(f"unknown normalization {method!r}")  # DataConfig validates this earlier


def apply_normalization(images: np.ndarray, record: dict[str, Any]) -> None:
    """Normalize new images in place as a loaded data set's ``normalization`` record says."""
    if record["method"] == "minmax":
        minmax_(images)
    elif record["method"] == "asinh":
        asinh_(images)
    elif record["method"] == "standardize":
        standardize_(images, np.asarray(record["mean"]), np.asarray(record["std"]))
    elif record["method"] != "none":  # a record from a newer version: never silently skip it
        raise ValueError(f"unknown normalization {record['method']!r}")
