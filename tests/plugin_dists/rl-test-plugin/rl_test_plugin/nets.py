"""A third-party architecture built from the core's flexible ResNet."""

from __future__ import annotations

from typing import Any

from torch import nn

from resnet_lightning.models import ResNet
from resnet_lightning.models.builders import resolve_block

from .blocks import ScaledBasicBlock


def rl_test_net(
    *, num_classes: int = 10, in_channels: int = 3, block: str | type | None = None, width: int = 8, **kwargs: Any
) -> nn.Module:
    """Two stages of one block each on a CIFAR stem, ``width`` and ``2 * width`` channels."""
    block_cls, name = resolve_block(block, "basic") if block is not None else (ScaledBasicBlock, "rl_test_block")
    return ResNet(
        block_cls, [1, 1], widths=(width, 2 * width), stem="cifar", num_classes=num_classes,
        in_channels=in_channels, block_name=name, **kwargs,
    )
