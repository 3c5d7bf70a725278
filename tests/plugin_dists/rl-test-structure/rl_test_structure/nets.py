"""An architecture of :class:`~rl_test_structure.blocks.BodySkipBlock` on the core's ResNet."""

from __future__ import annotations

from typing import Any

from torch import nn

from resnet_lightning.models import ResNet
from resnet_lightning.models.builders import resolve_block

from .blocks import BodySkipBlock


def rl_structure_net(
    *, num_classes: int = 10, in_channels: int = 3, block: str | type | None = None, depth: int = 2, **kwargs: Any
) -> nn.Module:
    """Three stages of ``depth`` blocks each (8, 16, 32 channels) on a CIFAR stem."""
    block_cls, name = resolve_block(block, "basic") if block is not None else (BodySkipBlock, "rl_body_skip")
    return ResNet(
        block_cls, [depth] * 3, widths=(8, 16, 32), stem="cifar", num_classes=num_classes,
        in_channels=in_channels, block_name=name, **kwargs,
    )
