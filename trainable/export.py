"""A trained model as one file: the weights of one network or of an ensemble, the configuration
that made each, what a new image needs to be classified the same way (class names, channels,
image size, normalization), and how probabilities become decisions.

    from trainable.export import load_model
    model = load_model("results/lens_finding/best_model.pt")
    probabilities = model.predict(images)          # (N, C, H, W) float32, normalized as in training
    classes = model.decide(probabilities)          # at the stored threshold (binary), else argmax

``predict`` is what the search's final stage chose (:mod:`search.final`): each member's class
probabilities (averaged over the 8 flips and rotations of each image when ``tta``), corrected for
a training prior its sampling strategy moved (``log_weights``), averaged over the members, then
temperature-scaled (``temperature``). ``decide`` calls class 1 of a binary task from
``threshold``. The file holds tensors, strings and numbers only: ``torch.load(path,
weights_only=True)`` reads it. Files of the first format (one network, no decision settings)
load as a one-member model with temperature 1 and no threshold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trainable.checkpoint import BEST_FILE
from trainable.config import TrainConfig
from trainable.decide import calibrate, decide
from trainable.errors import UserError
from trainable.losses import LOSSES, build_loss
from trainable.models import build_backbone

FORMAT = "lens-search-model/2"
FORMATS = ("lens-search-model/1", FORMAT)
SHARED = ("class_names", "in_chans", "normalization", "input_size")  # what every member must agree on


def export_model(checkpoint_dirs: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike,
                 members: Sequence[dict[str, Any]] | None = None, decision: dict[str, Any] | None = None,
                 **extra: Any) -> Path:
    """Write the best weights of one trial checkpoint, or of several (an ensemble), to ``out``.

    The model records ``input_size``, the [height, width] of the images it was trained on, from
    the checkpoints, so that a prediction can refuse images of another size.

    Args:
        checkpoint_dirs: A folder holding a trial checkpoint's ``best.pt``
            (:mod:`trainable.checkpoint`), or a list of them: the ensemble's members, the first
            one the single best. They must share class names, channels, input size and
            normalization.
        out: The model file to write (written to a temporary name, then renamed).
        members: Per member, more plain values to keep with it: ``trial_id``, ``log_weights``
            (the prior correction, one number a class).
        decision: ``temperature``, ``threshold``, ``threshold_rule``, ``threshold_counts``,
            ``tta`` (see the module docstring); absent keys leave probabilities as the networks give them.
        **extra: More plain values to keep with it: ``image_size`` (the data layer resized every
            image to it), ``input_size`` (wins over the checkpoints'), ``metrics``, ...

    Raises:
        ValueError: the checkpoints disagree on the data they were trained on.
    """
    dirs = [checkpoint_dirs] if isinstance(checkpoint_dirs, (str, os.PathLike)) else list(checkpoint_dirs)
    states = [torch.load(Path(d) / BEST_FILE, map_location="cpu", weights_only=True) for d in dirs]
    first = states[0]
    for d, state in zip(dirs[1:], states[1:]):
        differ = [k for k in SHARED if state.get(k) != first.get(k)]
        if differ:
            raise ValueError(f"{d}: trained on other data than {dirs[0]} ({', '.join(differ)})")
    entries = []
    for i, state in enumerate(states):
        config = TrainConfig.from_mapping(state["config"])
        entry = {"model": state["model"], "config": state["config"], "epoch": state["epoch"],
                 "num_outputs": LOSSES[config.loss].num_outputs(len(state["class_names"]))}
        entry.update((members or [{}] * len(states))[i])
        if entry.get("log_weights") is not None:
            entry["log_weights"] = [float(w) for w in entry["log_weights"]]
        entries.append(entry)
    payload = {"format": FORMAT, "members": entries, "class_names": first["class_names"],
               "in_chans": first["in_chans"], "normalization": first["normalization"],
               # The single best member's, for readers of one network's settings.
               "config": first["config"], "epoch": first["epoch"],
               "input_size": first.get("input_size"), "temperature": 1.0, "threshold": None,
               "threshold_rule": None, "threshold_counts": None, "tta": False, **(decision or {}), **extra}
    if payload["input_size"] is None:  # a checkpoint without one: predict checks no size
        del payload["input_size"]
    else:
        payload["input_size"] = [int(n) for n in payload["input_size"]]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    torch.save(payload, partial)
    partial.replace(out)
    return out


def annotate_model(path: str | os.PathLike, **extra: Any) -> Path:
    """Add plain values (``test`` metrics, ...) to a model file, rewritten in place atomically."""
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload.update(extra)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)
    return path


def tta_views(images: torch.Tensor, tta: bool | str) -> list[torch.Tensor]:
    """The views a prediction averages over: the images alone (``False``), :func:`dihedral`
    (``True``: lenses, which have no up), or the images and their left-right mirrors
    (``"hflip"``: photographs)."""
    if tta == "hflip":
        return [images, images.flip(-1)]
    return dihedral(images) if tta else [images]


def dihedral(images: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations and flips of square images; of non-square ones, the 4 that keep the shape."""
    if images.shape[-1] != images.shape[-2]:
        return [images, images.flip(-1), images.flip(-2), images.flip(-1, -2)]
    rotations = [torch.rot90(images, k, dims=(-2, -1)) for k in range(4)]
    return rotations + [r.flip(-1) for r in rotations]


@dataclass
class Member:
    """One network of a model file, with its loss (which turns outputs into probabilities) and
    its prior correction (None: none)."""

    network: torch.nn.Module
    loss: torch.nn.Module
    log_weights: np.ndarray | None = None
    trial_id: str | None = None

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 256, tta: bool | str = False) -> np.ndarray:
        """Class probabilities (N, C), averaged over the views of :func:`tta_views`, then
        prior-corrected."""
        device = next(self.network.parameters()).device
        views = tta_views(images, tta)
        total = None
        for view in views:
            out = torch.cat([self.loss.probabilities(self.network(view[i:i + batch_size].to(device))).float().cpu()
                             for i in range(0, len(view), batch_size)]).numpy().astype(np.float64)
            total = out if total is None else total + out
        mean = total / len(views)
        return mean if self.log_weights is None else calibrate(mean, 1.0, self.log_weights)


@dataclass
class ExportedModel:
    """A loaded model file: its networks in evaluation mode and everything saved with them."""

    members: list[Member]
    info: dict[str, Any]

    @property
    def network(self) -> torch.nn.Module:
        """The single best member's network."""
        return self.members[0].network

    @property
    def loss(self) -> torch.nn.Module:
        return self.members[0].loss

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def temperature(self) -> float:
        return float(self.info.get("temperature") or 1.0)

    @property
    def threshold(self) -> float | None:
        return self.info.get("threshold")

    @property
    def tta(self) -> bool | str:
        """The final stage's choice: ``False``, ``True`` (the 8 flips and rotations) or ``"hflip"``."""
        return self.info.get("tta") or False

    def combine(self, member_probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """The members' (prior-corrected) probabilities averaged, then temperature-scaled."""
        mean = np.mean(np.stack(member_probabilities), axis=0)
        return mean if self.temperature == 1.0 else calibrate(mean, self.temperature)

    def predict(self, images: torch.Tensor, batch_size: int = 256, tta: bool | str | None = None) -> torch.Tensor:
        """Class probabilities (N, num_classes) of images prepared as the training images were;
        ``tta`` None: as the model file says, else a mode of :func:`tta_views`."""
        if len(images) == 0:
            return torch.empty(0, len(self.class_names))
        tta = self.tta if tta is None else tta
        combined = self.combine([m.probabilities(images, batch_size, tta) for m in self.members])
        return torch.from_numpy(combined.astype(np.float32))

    def decide(self, probabilities: np.ndarray | torch.Tensor) -> np.ndarray:
        """Predicted classes: at the stored threshold (binary), else the most probable class."""
        if isinstance(probabilities, torch.Tensor):
            probabilities = probabilities.numpy()
        return decide(probabilities, self.threshold)


def _member(entry: dict[str, Any], num_classes: int, in_chans: int, device) -> Member:
    config = TrainConfig.from_mapping(entry["config"])
    network = build_backbone(config.backbone, entry["num_outputs"], in_chans, drop_rate=config.drop_rate,
                             cnn_width=config.cnn_width, cnn_depth=config.cnn_depth)
    network.load_state_dict(entry["model"])
    loss = build_loss(config.loss, num_classes, label_smoothing=config.label_smoothing,
                      focal_gamma=config.focal_gamma, focal_alpha=config.focal_alpha)
    weights = entry.get("log_weights")
    return Member(network.to(device).eval(), loss.to(device),
                  None if weights is None else np.asarray(weights, dtype=np.float64), entry.get("trial_id"))


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
    if not isinstance(info, dict) or info.get("format") not in FORMATS:
        raise UserError(f"{path}: not a lens-search model file (format {FORMAT})")
    if info["format"] == FORMATS[0]:  # one network, its settings at the top level
        info = {**info, "members": [{k: info[k] for k in ("model", "config", "epoch", "num_outputs")}]}
        del info["model"]
    num_classes = len(info["class_names"])
    members = [_member(entry, num_classes, info["in_chans"], device) for entry in info["members"]]
    return ExportedModel(members, info)
