"""Batched, physically valid augmentations of lens images: flips, rotations and small shifts; and
for photographs (CIFAR-10 and the like), left-right mirrors and padded random crops.

    config = AugmentConfig.from_config({"augment_flip": True, "augment_rotate": 180.0})
    if config.enabled:
        images = augment(images, config, generator)  # (B, C, H, W), on the batch's device

A lensed image is still a lens after rotating or mirroring it, so the dihedral group (flips,
quarter turns) is applied losslessly and arbitrary rotations and shifts through one bilinear
resampling. Nothing shears, stretches, scales or blurs: that would distort the arcs. A photograph
has an up and a down: ``hflip`` mirrors it left-right only, and ``crop`` is the usual pad-and-crop
(whole-pixel shifts, lossless, edges repeated into the padding). Every random draw comes from
``generator``, so a seed fixes the output. Labels are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from trainable.errors import UserError


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations one trial applies to its training batches.

    Attributes:
        flip: Random horizontal and vertical flips, each with probability 0.5 per image.
        rot90: A random multiple of 90 degrees per image (square images only).
        rotate: Rotation by an angle uniform in [-rotate, +rotate] degrees; 180 means any
            angle, 0 none. Bilinear resampling.
        translate: Shift uniform in [-translate, +translate] times the image size, per axis;
            0 is none, below 0.5.
        hflip: Random left-right mirror only, with probability 0.5 (photographs; ``flip``
            mirrors both ways).
        crop: Pad each side by this fraction of the size (edges repeated), then crop the
            original size at a random whole-pixel offset: 0.125 is CIFAR's 4-pixel crop.
    """

    flip: bool = False
    rot90: bool = False
    rotate: float = 0.0
    translate: float = 0.0
    hflip: bool = False
    crop: float = 0.0

    def __post_init__(self) -> None:
        problems = [f"augment_{key}: expected a bool, got {getattr(self, key)!r}"
                    for key in ("flip", "rot90", "hflip") if not isinstance(getattr(self, key), bool)]
        if not (_is_number(self.rotate) and 0 <= self.rotate <= 180):
            problems.append(f"augment_rotate: expected degrees in [0, 180], got {self.rotate!r}")
        if not (_is_number(self.translate) and 0 <= self.translate < 0.5):
            problems.append(f"augment_translate: expected a fraction of the image size in "
                            f"[0, 0.5), got {self.translate!r}")
        if not (_is_number(self.crop) and 0 <= self.crop < 0.5):
            problems.append(f"augment_crop: expected a fraction of the image size in [0, 0.5), "
                            f"got {self.crop!r}")
        if problems:
            raise UserError("; ".join(problems))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "AugmentConfig":
        """Read the flat trial keys ``augment_flip``, ``augment_rot90``, ``augment_rotate``,
        ``augment_translate``, ``augment_hflip`` and ``augment_crop``; missing keys take the
        defaults, other keys are ignored."""
        defaults = cls()
        return cls(**{name: config.get(f"augment_{name}", getattr(defaults, name))
                      for name in ("flip", "rot90", "rotate", "translate", "hflip", "crop")})

    @property
    def enabled(self) -> bool:
        """False when every option is off: the training loop then skips :func:`augment`."""
        return self.flip or self.rot90 or self.rotate > 0 or self.translate > 0 or self.hflip or self.crop > 0

    def check_image_size(self, height: int, width: int) -> None:
        """Raise :class:`UserError` if these options cannot apply to ``height`` x ``width``
        images (quarter turns of a non-square image would change its shape)."""
        if self.rot90 and height != width:
            raise UserError(f"augment_rot90: needs square images, got {height}x{width}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def augment(images: torch.Tensor, config: AugmentConfig,
            generator: torch.Generator) -> torch.Tensor:
    """Augment a batch, each image with its own random draws.

    Args:
        images: (B, C, H, W) floating-point batch, on any device.
        config: The options; a disabled config returns ``images`` itself.
        generator: Supplies all randomness (same seed, same output); best on the batch's device.

    Returns:
        The augmented batch, with the shape, dtype and device of ``images``.
    """
    config.check_image_size(images.shape[-2], images.shape[-1])
    batch, device = images.shape[0], images.device

    def uniform(*shape: int) -> torch.Tensor:  # in [0, 1), drawn where the generator lives
        return torch.rand(shape, generator=generator, device=generator.device).to(device)

    def per_image(mask: torch.Tensor) -> torch.Tensor:
        return mask.view(-1, 1, 1, 1)

    if config.flip or config.hflip:
        images = torch.where(per_image(uniform(batch) < 0.5), images.flip(-1), images)
    if config.flip:
        images = torch.where(per_image(uniform(batch) < 0.5), images.flip(-2), images)
    if config.rot90:
        k = (uniform(batch) * 4).long().clamp_(max=3)
        # torch.where over the three turned copies, not a gather per k: no host-device sync.
        turned = images
        for r in (1, 2, 3):
            turned = torch.where(per_image(k == r), torch.rot90(images, r, dims=(-2, -1)), turned)
        images = turned
    if config.rotate > 0 or config.translate > 0:  # else skip resampling: lossless
        angles = (2 * uniform(batch) - 1) * config.rotate
        shifts = (2 * uniform(batch, 2) - 1) * config.translate
        images = _affine(images, angles, shifts)
    if config.crop > 0:
        images = _crop(images, config.crop, uniform(batch, 2))
    return images


def _crop(images: torch.Tensor, fraction: float, draws: torch.Tensor) -> torch.Tensor:
    """Pad each side by ``fraction`` of the size (edge pixels repeated), then take an
    original-size window at a whole-pixel offset per image (``draws``: (B, 2) in [0, 1))."""
    batch, _, height, width = images.shape
    pad_y, pad_x = round(fraction * height), round(fraction * width)
    if not (pad_y or pad_x):
        return images
    padded = F.pad(images, (pad_x, pad_x, pad_y, pad_y), mode="replicate")
    dy = (draws[:, 0] * (2 * pad_y + 1)).long().clamp_(max=2 * pad_y)
    dx = (draws[:, 1] * (2 * pad_x + 1)).long().clamp_(max=2 * pad_x)
    rows = (dy[:, None] + torch.arange(height, device=images.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(width, device=images.device))[:, None, None, :]  # (B, 1, 1, W)
    index = torch.arange(batch, device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[index, channels, rows, cols]


def _affine(images: torch.Tensor, angles_deg: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre, then shift it, in one bilinear resampling.

    Args:
        images: (B, C, H, W) batch.
        angles_deg: (B,) angles in degrees, counter-clockwise as displayed (row 0 at the top),
            so +90 matches ``torch.rot90(images, 1, dims=(-2, -1))``.
        shifts: (B, 2) shifts (x right, y down) as fractions of the width and height.

    Returns:
        The resampled batch, same shape and dtype as ``images``.
    """
    height, width = images.shape[-2:]
    compute = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    theta = torch.deg2rad(angles_deg.to(images.device, compute))
    cos, sin = torch.cos(theta), torch.sin(theta)
    # affine_grid maps output to input coordinates normalized to [-1, 1] per axis, i.e. pixels
    # scaled by (W/2, H/2). The inverse pixel rotation R^T = [[c, -s], [s, c]] (y down) becomes
    # D^-1 R^T D with D = diag(W/2, H/2): the aspect factors keep it a rotation in pixels.
    # A shift by f (fraction of size) is 2f in normalized units; the inverse map subtracts it.
    matrix = torch.stack([torch.stack([cos, -sin * (height / width)], -1),
                          torch.stack([sin * (width / height), cos], -1)], -2)  # (B, 2, 2)
    offset = -2 * matrix @ shifts.to(images.device, compute).unsqueeze(-1)  # (B, 2, 1)
    grid = F.affine_grid(torch.cat([matrix, offset], -1), list(images.shape), align_corners=False)
    # 'border' repeats the edge pixels into the corners the rotation uncovers: a standardized
    # image's background is near its mean, not 0, and zero padding would draw a dark frame
    # (an artificial feature the network could learn).
    out = F.grid_sample(images.to(compute), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.to(images.dtype)

