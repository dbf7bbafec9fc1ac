"""A trained model as one file: its weights, the configuration that made it, and what a new image
needs to be classified the same way (class names, channels, image size, normalization).

    from trainable.export import load_model
    model = load_model("results/lens_finding/best_model.pt")
    probabilities = model.predict(images)          # (N, C, H, W) float32, normalized as in training

The file holds tensors, strings and numbers only: ``torch.load(path, weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainable.config import TrainConfig
from trainable.errors import UserError
from trainable.losses import LOSSES, build_loss
from trainable.models import build_backbone
from trainable.checkpoint import BEST_FILE

FORMAT = "lens-search-model/1"


def export_model(checkpoint_dir: str | os.PathLike, out: str | os.PathLike,
                 **extra: Any) -> Path:
    """Write the best weights of a trial checkpoint, with their settings, to ``out``.

    The model records ``input_size``, the [height, width] of the images it was trained on, from
    the checkpoint, so that a prediction can refuse images of another size.

    Args:
        checkpoint_dir: A folder holding a trial checkpoint's ``best.pt`` (:mod:`trainable.checkpoint`).
        out: The model file to write (written to a temporary name, then renamed).
        **extra: More plain values to keep with it: ``image_size`` (the data layer resized every
            image to it), ``input_size`` (wins over the checkpoint's), ``metrics``, ...
    """
    state = torch.load(Path(checkpoint_dir) / BEST_FILE, map_location="cpu", weights_only=True)
    config = TrainConfig.from_mapping(state["config"])
    loss = LOSSES[config.loss]
    payload = {"format": FORMAT, "model": state["model"], "config": state["config"],
               "class_names": state["class_names"], "in_chans": state["in_chans"],
               "num_outputs": loss.num_outputs(len(state["class_names"])),
               "normalization": state["normalization"], "epoch": state["epoch"],
               "input_size": state.get("input_size"), **extra}
    if payload["input_size"] is None:  # an older checkpoint: predict checks no size, as before
        del payload["input_size"]
    else:
        payload["input_size"] = [int(n) for n in payload["input_size"]]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    torch.save(payload, partial)
    partial.replace(out)
    return out


@dataclass
class ExportedModel:
    """A loaded model file: the network in evaluation mode and everything saved with it."""

    network: torch.nn.Module
    loss: torch.nn.Module
    info: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Class probabilities (N, num_classes) of images prepared as the training images were."""
        device = next(self.network.parameters()).device
        out = [self.loss.probabilities(self.network(images[i:i + batch_size].to(device))).float().cpu()
               for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.empty(0, len(self.class_names))


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> ExportedModel:
    """Rebuild a model written by :func:`export_model` (no pretrained weights are fetched).

    Raises:
        UserError: the file is missing or is not a model file of this project.
    """
    path = Path(path)
    try:
        info = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such model file") from None
    except Exception as err:  # a corrupt or foreign file
        raise UserError(f"{path}: not a lens-search model file ({type(err).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise UserError(f"{path}: not a lens-search model file (format {FORMAT})")
    config = TrainConfig.from_mapping(info["config"])
    network = build_backbone(config.backbone, info["num_outputs"], info["in_chans"],
                             drop_rate=config.drop_rate)
    network.load_state_dict(info["model"])
    loss = build_loss(config.loss, len(info["class_names"]), label_smoothing=config.label_smoothing,
                      focal_gamma=config.focal_gamma, focal_alpha=config.focal_alpha)
    return ExportedModel(network.to(device).eval(), loss.to(device), info)
