"""Backbones by name: any timm model, plus ``simple_cnn`` (the custom CNN of a reference solution).

Pretrained weights come from a file (``pretrained_path``) or timm's Hugging Face cache on this
machine, never from the network at training time: a worker node without network, or a cluster of
hundreds of trials, must not stall on downloads. Fetch them once beforehand where there is network:
``python -c "import timm; timm.create_model('efficientnet_b0', pretrained=True)"``.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from trainable.errors import UserError
from trainable.names import CUSTOM_BACKBONES


class SimpleCNN(nn.Module):
    """Conv blocks (3x3, batch norm, ReLU, 2x2 max-pool) and dense 256-256 with dropout.

    The custom CNN of the 100-class generated-images reference solution, sized for small images:
    by default its 4 blocks of 64-64-128-256 filters. ``width`` scales the filters (the blocks
    have width, width, 2 x width, 4 x width, 4 x width, ...) and ``depth`` sets the blocks.
    """

    def __init__(self, num_classes: int, in_chans: int = 3, dropout: float = 0.3, width: int = 64,
                 depth: int = 4):
        super().__init__()
        layers, channels = [], in_chans
        for width_i in cnn_widths(width, depth):
            layers += [nn.Conv2d(channels, width_i, 3, padding=1, bias=False), nn.BatchNorm2d(width_i),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            channels = width_i
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 256), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(256, 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def cnn_widths(width: int, depth: int) -> list[int]:
    """Filters of each of ``simple_cnn``'s blocks: (64, 4) gives the reference's 64-64-128-256."""
    return [width * (1, 1, 2)[i] if i < 3 else width * 4 for i in range(depth)]


def _cached_weights(name: str) -> str | None:
    """The file of ``name``'s default pretrained weights in the local Hugging Face cache, if any."""
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg else None
    if not repo:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return found
    return None


def build_backbone(name: str, num_classes: int, in_chans: int, *, pretrained: bool = False,
                   pretrained_path: str | None = None, drop_rate: float = 0.0, cnn_width: int = 64,
                   cnn_depth: int = 4) -> nn.Module:
    """Create a classifier backbone.

    Args:
        name: A timm model name (``timm.list_models()``: ``efficientnet_b0`` .. ``b7``,
            ``resnet50``, ``inception_resnet_v2``, ``vgg16``, ``resnet10t``, ...) or ``simple_cnn``.
        num_classes: Outputs of the classifier head.
        in_chans: Input channels; timm adapts a pretrained stem to it (1-channel lens images
            are not copied to 3 channels).
        pretrained: Load pretrained weights from ``pretrained_path`` or the local timm cache.
        pretrained_path: A weights file (.safetensors / .pth) for this model.
        drop_rate: Dropout before the classifier (timm) or in the dense layers (simple_cnn).
        cnn_width: ``simple_cnn``'s filters in its first block (:func:`cnn_widths`); others ignore it.
        cnn_depth: ``simple_cnn``'s conv blocks; others ignore it.

    Raises:
        UserError: an unknown name, or pretrained weights that are not on this machine.
    """
    if name == "simple_cnn":
        if pretrained:
            raise UserError("backbone 'simple_cnn' has no pretrained weights; set pretrained: false")
        return SimpleCNN(num_classes, in_chans, dropout=drop_rate, width=cnn_width, depth=cnn_depth)
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        hint = f"; similar timm models: {', '.join(close)}" if close else ""
        raise UserError(f"backbone {name!r} is not a timm model (timm.list_models()) nor one of "
                        f"{', '.join(CUSTOM_BACKBONES)}{hint}")
    kwargs = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": drop_rate}
    if pretrained:
        path = pretrained_path or _cached_weights(name)
        if path is None:
            raise UserError(f"backbone {name!r}: no pretrained weights on this machine; download "
                            f"them where there is network (timm.create_model({name!r}, "
                            f"pretrained=True)) or set pretrained_path to a weights file")
        if not Path(path).is_file():
            raise UserError(f"pretrained_path: {path} does not exist")
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    elif pretrained_path:
        raise UserError("pretrained_path is set but pretrained is false; set pretrained: true")
    return timm.create_model(name, **kwargs)


@torch.no_grad()
def refresh_batchnorm(network: nn.Module, images: torch.Tensor, batch_size: int = 64) -> bool:
    """Recompute every BatchNorm layer's running mean and variance from ``images`` (the training
    images, un-augmented): their plain average over equal batches, as
    ``torch.optim.swa_utils.update_bn`` does, but with only the BatchNorm layers in training mode,
    so that dropout and stochastic depth do not perturb the statistics.

    The running statistics a short training leaves behind are an exponential average over the
    last batches, taken while the weights moved under them; after a few dozen steps they lag the
    weights enough to push every image toward one class at evaluation.

    Returns:
        Whether the network has BatchNorm layers (False: nothing changed).
    """
    layers = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers or len(images) == 0:
        return False
    was_training = network.training
    momenta = {m: m.momentum for m in layers}
    network.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches
        layer.train()
    device = next(network.parameters()).device
    batch_size = min(batch_size, len(images))
    for start in range(0, len(images) - batch_size + 1, batch_size):  # equal batches only
        network(images[start:start + batch_size].to(device))
    for layer, momentum in momenta.items():
        layer.momentum = momentum
    network.train(was_training)
    return True
