"""The in-memory data set every trial trains on."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from trainable.display import MANY_CLASSES


@dataclass(eq=False)
class ImageDataset:
    """Images, labels and splits of one data set, decoded and normalized.

    Attributes:
        images: Float32 tensor (N, C, H, W), normalized.
        labels: Int64 tensor (N,) of class indices into ``class_names``.
        class_names: Name of each class, in label order.
        splits: Index arrays ``train``, ``val`` and ``test`` into ``images``.
        files: The file (or files, joined by ``+``) each image was read from.
        metadata: Per-image table from the data set (e.g. the CSV's other columns), or None.
            In the Bologna lens-finding set these columns are simulation truth that encode the
            label: never features.
        normalization: How pixels were normalized, to do the same on new images.
        source: The ``data:`` block it was loaded from, and the layout found.

    Pickling (as Ray's object store does) turns the tensors into NumPy arrays and back with
    ``torch.from_numpy``: in the object store they are shared, zero-copy and read-only, so
    several trials on a node do not each hold a copy. Index with ``split`` (which copies the
    rows it takes); never write into ``images``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    splits: dict[str, np.ndarray]
    files: tuple[str, ...]
    metadata: pd.DataFrame | None = None
    normalization: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_chans(self) -> int:
        """Channels per image: what a backbone's ``in_chans`` must be."""
        return int(self.images.shape[1])

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[2:])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of the ``train``, ``val`` or ``test`` split (a copy)."""
        index = torch.from_numpy(self.splits[name])
        return self.images[index], self.labels[index]

    def class_counts(self, name: str) -> dict[str, int]:
        """Images per class in one split."""
        counts = np.bincount(self.labels.numpy()[self.splits[name]], minlength=self.num_classes)
        return dict(zip(self.class_names, counts.tolist()))

    def summary(self) -> str:
        """A few lines describing the set, for the command line and logs."""
        c, (h, w) = self.in_chans, self.image_shape
        lines = [f"{len(self.labels)} images of {c}x{h}x{w} in {self.num_classes} classes "
                 f"({self.source.get('layout', self.source.get('format', '?'))}), "
                 f"normalization {self.normalization.get('method')}"]
        for name in self.splits:
            per_class = self.class_counts(name)
            if len(per_class) > MANY_CLASSES:  # 100 classes: the range and the rarest, not 100 counts
                rarest = sorted(per_class.items(), key=lambda kv: kv[1])[:3]
                counts = (f"{min(per_class.values())}-{max(per_class.values())} a class; fewest: "
                          + ", ".join(f"{k}: {v}" for k, v in rarest))
            else:
                counts = ", ".join(f"{k}: {v}" for k, v in per_class.items())
            lines.append(f"  {name:5s} {len(self.splits[name]):6d}  ({counts})")
        return "\n".join(lines)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["images"] = self.images.numpy()
        state["labels"] = self.labels.numpy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            # Arrays from Ray's object store are read-only views of shared memory; sharing them
            # is the point, and this class never writes into them.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            state["images"] = torch.from_numpy(state["images"])
            state["labels"] = torch.from_numpy(state["labels"])
        self.__dict__.update(state)
