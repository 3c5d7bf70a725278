"""ResNeXt architectures: torchvision's ResNet-50/101 layouts with grouped bottlenecks.

Each builder returns the framework's :class:`resnet_lightning.models.ResNet` with
torchvision's module names, so ``torchvision.models.resnext50_32x4d`` weights
load with ``strict=True``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from resnet_lightning import get_block
from resnet_lightning.models import ResNet

from .blocks import ResNeXtBottleneck


def _resnext(block: str | type[nn.Module] | None, layers: list[int], cardinality: int, base_width: int, **kwargs: Any) -> ResNet:
    block_cls = get_block(block) if isinstance(block, str) else block or ResNeXtBottleneck
    name = block if isinstance(block, str) else f"{block_cls.__module__}.{block_cls.__qualname__}"
    block_kwargs = dict(dict(cardinality=cardinality, base_width=base_width), **kwargs.pop("block_kwargs", None) or {})
    return ResNet(block_cls, layers, block_kwargs=block_kwargs, block_name=name, **kwargs)


def resnext50_32x4d(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    block: str | type[nn.Module] | None = None,
    cardinality: int = 32,
    base_width: int = 4,
    **kwargs: Any,
) -> ResNet:
    """ResNeXt-50 (32x4d) (Xie et al. 2017, Table 1): 25,028,904 parameters, as torchvision's."""
    return _resnext(block, [3, 4, 6, 3], cardinality, base_width, num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnext101_32x8d(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    block: str | type[nn.Module] | None = None,
    cardinality: int = 32,
    base_width: int = 8,
    **kwargs: Any,
) -> ResNet:
    """ResNeXt-101 (32x8d): 88,791,336 parameters, as torchvision's."""
    return _resnext(block, [3, 4, 23, 3], cardinality, base_width, num_classes=num_classes, in_channels=in_channels, **kwargs)
