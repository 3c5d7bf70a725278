"""SE-ResNet architectures: torchvision's ResNet layouts with SE blocks (Hu et al. 2018).

Each builder follows the resnet-lightning architecture contract
``arch(*, num_classes, in_channels, block=None, **kwargs)`` and returns the
framework's :class:`resnet_lightning.models.ResNet`, so every ResNet option
(``widths``, ``stem``, ``shortcut``, ``drop_path_rate``, ``zero_init_residual``,
``block_kwargs``) works here too. For CIFAR-style SE networks use the core's
``cifar_resnet`` with ``block="se_basic"``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from resnet_lightning import get_block
from resnet_lightning.models import ResNet

from .blocks import SEBasicBlock, SEBottleneck


def _se_resnet(
    block: str | type[nn.Module] | None,
    default: type[nn.Module],
    layers: list[int],
    reduction: int,
    **kwargs: Any,
) -> ResNet:
    block_cls = get_block(block) if isinstance(block, str) else block or default
    block_kwargs = dict(dict(reduction=reduction), **kwargs.pop("block_kwargs", None) or {})
    name = block if isinstance(block, str) else f"{block_cls.__module__}.{block_cls.__qualname__}"
    return ResNet(block_cls, layers, block_kwargs=block_kwargs, block_name=name, **kwargs)


def se_resnet18(
    *, num_classes: int = 1000, in_channels: int = 3, block: str | type | None = None, reduction: int = 16, **kwargs: Any
) -> ResNet:
    """SE-ResNet-18: ResNet-18 with SE basic blocks; 11,778,592 parameters at 1000 classes."""
    return _se_resnet(block, SEBasicBlock, [2, 2, 2, 2], reduction, num_classes=num_classes, in_channels=in_channels, **kwargs)


def se_resnet34(
    *, num_classes: int = 1000, in_channels: int = 3, block: str | type | None = None, reduction: int = 16, **kwargs: Any
) -> ResNet:
    """SE-ResNet-34: ResNet-34 with SE basic blocks; 21,958,868 parameters at 1000 classes."""
    return _se_resnet(block, SEBasicBlock, [3, 4, 6, 3], reduction, num_classes=num_classes, in_channels=in_channels, **kwargs)


def se_resnet50(
    *, num_classes: int = 1000, in_channels: int = 3, block: str | type | None = None, reduction: int = 16, **kwargs: Any
) -> ResNet:
    """SE-ResNet-50 (Hu et al. 2018): 28,088,024 parameters at 1000 classes (the paper's 28.1M)."""
    return _se_resnet(block, SEBottleneck, [3, 4, 6, 3], reduction, num_classes=num_classes, in_channels=in_channels, **kwargs)
