"""How results are shown to a person: the W&B tables and the report's pictures use one scaling of
an image, and one count of classes above which a set is summarised, not listed class by class."""

from __future__ import annotations

import numpy as np

MANY_CLASSES = 12  # above this, figures stop labelling each class and counts give the range


def displayable(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, 3) picture in [0, 1]: the first channel, or RGB when there are three,
    scaled to the image's own min and max."""
    image = np.asarray(image, dtype=float)
    if image.ndim == 3:
        image = np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]
    low, high = np.nanmin(image), np.nanmax(image)
    return np.clip((image - low) / (high - low), 0, 1) if high > low else np.zeros_like(image)

