"""WRN-d-k for CIFAR (Zagoruyko & Komodakis 2016, Table 1).

A 3x3 convolution to 16 channels, three stages of ``n = (d - 4) / 6`` wide
basic blocks of widths ``16k``, ``32k`` and ``64k`` on 32x32, 16x16 and 8x8
maps, BN-ReLU, global average pooling and a linear classifier. Built on the
framework's :class:`resnet_lightning.models.ResNet`, so its options
(``drop_path_rate``, ``zero_init_residual``, ``norm_layer``, ``block_kwargs``)
work here too.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from resnet_lightning import get_block
from resnet_lightning.models import ResNet

from .blocks import WideBasicBlock


def wide_resnet(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    block: str | type[nn.Module] | None = None,
    depth: int = 28,
    widen_factor: int = 10,
    dropout: float = 0.0,
    **kwargs: Any,
) -> ResNet:
    """WRN-``depth``-``widen_factor``; WRN-28-10 has 36,479,194 parameters at 10 classes.

    Args:
        num_classes: Output classes.
        in_channels: Input image channels.
        block: Block name or class (default ``"wide_basic"``).
        depth: Weighted layers, 6n+4 (16, 22, 28, 40, ...).
        widen_factor: k, the width multiplier of every stage.
        dropout: Dropout between the convolutions of each block.
        **kwargs: Passed to :class:`resnet_lightning.models.ResNet`.
    """
    n, remainder = divmod(depth - 4, 6)
    if remainder or n < 1:
        nearest = f"{6 * n + 4} or {6 * n + 10}" if n >= 1 else "10"
        raise ValueError(f"WRN depth must be 6n+4 (16, 22, 28, 40, ...), got depth={depth}; try depth={nearest}")
    if not isinstance(widen_factor, int) or widen_factor < 1:
        raise ValueError(f"widen_factor must be a positive integer (k in WRN-d-k), got {widen_factor!r}")
    block_cls = get_block(block) if isinstance(block, str) else block or WideBasicBlock
    name = block if isinstance(block, str) else f"{block_cls.__module__}.{block_cls.__qualname__}"
    block_kwargs = dict(dict(dropout=dropout), **kwargs.pop("block_kwargs", None) or {})
    k = widen_factor
    options = dict(dict(widths=(16 * k, 32 * k, 64 * k), stem="cifar", stem_width=16, shortcut="B"), **kwargs)
    model = ResNet(
        block_cls, [n] * 3, num_classes=num_classes, in_channels=in_channels, block_kwargs=block_kwargs, block_name=name, **options
    )
    if getattr(block_cls, "preactivation", False):
        # WRN's stem is a lone convolution: a pre-activation block starts with its own
        # BN-ReLU, so the stem's would be applied twice (as in the reference code).
        model.bn1, model.relu = nn.Identity(), nn.Identity()
    return model


def wrn16_8(**kwargs: Any) -> ResNet:
    """WRN-16-8: 10,961,370 parameters at 10 classes (the paper's 11.0M)."""
    return wide_resnet(**dict(dict(depth=16, widen_factor=8), **kwargs))


def wrn28_10(**kwargs: Any) -> ResNet:
    """WRN-28-10: 36,479,194 parameters at 10 classes (the paper's 36.5M); 4.00% CIFAR-10 error."""
    return wide_resnet(**dict(dict(depth=28, widen_factor=10), **kwargs))


def wrn40_4(**kwargs: Any) -> ResNet:
    """WRN-40-4: 8,949,210 parameters at 10 classes (the paper's 8.9M)."""
    return wide_resnet(**dict(dict(depth=40, widen_factor=4), **kwargs))
