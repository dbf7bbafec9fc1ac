"""What a trial saves after every epoch, and what resume, the export and W&B read from it.

A reported checkpoint is one folder:

* ``checkpoint.pt``: the latest epoch's whole state (weights, optimizer, scheduler, loss scaler,
  epoch, the best value so far): what a resumed or restarted trial continues from;
* ``best.pt``: the best epoch's weights only (no optimizer state: an EfficientNet-B7's Adam state
  is twice its weights), with what makes them usable on their own (configuration, class names,
  channels, input size, normalization): what :mod:`trainable.export` turns into the model file;
* ``val_probabilities.npy``: the latest epoch's validation probabilities (float32), what the
  trial's W&B plots are drawn from.

So Ray keeps only each trial's latest checkpoint: it holds the best weights too. Every file is
readable with ``torch.load(weights_only=True)`` (tensors, strings and numbers only).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainable.best import Best

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
VAL_PROBABILITIES_FILE = "val_probabilities.npy"


def describe(config: dict[str, Any], dataset) -> dict[str, Any]:
    """What a set of weights needs to be used on its own: the configuration that built them and
    the data they expect."""
    return {"config": dict(config), "class_names": list(dataset.class_names), "in_chans": dataset.in_chans,
            "input_size": [int(s) for s in dataset.image_shape], "normalization": dataset.normalization}


def weights_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights copied to the CPU (kept while later epochs change the model)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save(folder: str | os.PathLike, *, state: dict[str, Any], about: dict[str, Any], best: Best,
         best_weights: dict[str, torch.Tensor] | None, probabilities: np.ndarray | None) -> None:
    """Write a checkpoint folder.

    Args:
        folder: The (empty) folder to write to.
        state: The training state: ``model``, ``optimizer``, ``scheduler``, ``scaler`` state
            dicts and ``epoch`` (0-based).
        about: :func:`describe` of the run.
        best: The best value and epoch (1-based) so far.
        best_weights: That epoch's weights, or None before any finite value.
        probabilities: This epoch's validation probabilities, or None (a diverged epoch).
    """
    folder = Path(folder)
    record = {"value": best.value, "epoch": best.epoch, "mode": best.mode, "loss": best.loss}
    torch.save({**state, **about, "best": record}, folder / CHECKPOINT_FILE)
    if best_weights is not None:
        torch.save({"model": best_weights, **about, "epoch": best.epoch, "value": best.value},
                   folder / BEST_FILE)
    if probabilities is not None:
        np.save(folder / VAL_PROBABILITIES_FILE, probabilities.astype(np.float32))


def load_state(folder: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The latest state of a checkpoint folder (see :func:`save`)."""
    return torch.load(Path(folder) / CHECKPOINT_FILE, map_location=device, weights_only=True)


def load_best(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The best epoch's weights and description, or None when no epoch had a finite value."""
    path = Path(folder) / BEST_FILE
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def replace_best_weights(source: str | os.PathLike, target: str | os.PathLike,
                         weights: dict[str, torch.Tensor]) -> None:
    """Write the best-epoch file of folder ``target``: that of folder ``source`` (its description
    kept) with the model's weights replaced by ``weights`` (BatchNorm statistics recomputed, a
    refit's)."""
    saved = load_best(source)
    saved["model"] = {k: v.detach().cpu() for k, v in weights.items()}
    torch.save(saved, Path(target) / BEST_FILE)


def restore_best(state: dict[str, Any], folder: str | os.PathLike,
                 mode: str) -> tuple[Best, dict[str, torch.Tensor] | None]:
    """The best record and weights a resumed trial goes on from."""
    record = state.get("best") or {}
    best = Best(mode, record.get("value"), record.get("epoch"), record.get("loss"))
    saved = load_best(folder)
    return best, None if saved is None else saved["model"]


def read_file(checkpoint, name: str) -> bytes | None:
    """One file of a reported checkpoint, read where it is stored (a local folder, ``s3://``,
    ``gs://``) without downloading the rest; None if the checkpoint has no such file.

    Args:
        checkpoint: A ``ray.tune.Checkpoint`` (anything with a pyarrow ``filesystem`` and a ``path``).
        name: The file name, e.g. :data:`VAL_PROBABILITIES_FILE`.
    """
    path = f"{str(checkpoint.path).rstrip('/')}/{name}"
    try:
        with checkpoint.filesystem.open_input_file(path) as stream:
            return stream.read()
    except (FileNotFoundError, OSError):
        return None


def read_probabilities(checkpoint) -> np.ndarray | None:
    """The validation probabilities saved with a reported checkpoint, or None."""
    data = read_file(checkpoint, VAL_PROBABILITIES_FILE)
    return None if data is None else np.load(io.BytesIO(data))


def fetch_best(checkpoint, folder: str | os.PathLike) -> Path | None:
    """Copy a reported checkpoint's :data:`BEST_FILE` (only that file) into ``folder``."""
    data = read_file(checkpoint, BEST_FILE)
    if data is None:
        return None
    path = Path(folder) / BEST_FILE
    path.write_bytes(data)
    return path
