"""A deep feed-forward CIFAR-style CReLU network for the shattered-gradients comparison."""

from __future__ import annotations

from typing import Any

from torch import nn

from resnet_lightning import get_block
from resnet_lightning.models import ResNet

from .blocks import CReLULLBlock


def crelu_ll_net(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    block: str | type[nn.Module] | None = None,
    depth: int = 20,
    norm: bool = True,
    looks_linear: bool = True,
    **kwargs: Any,
) -> ResNet:
    """A CReLU network without skip connections, LL-initialised (Balduzzi et al. 2017).

    The layout of ``cifar_resnet`` and ``cifar_plain`` at the same depth (He et al.
    2015, Sec. 4.2): a 3x3 stem convolution, three stages of n blocks of two
    layers at widths 16, 32, 64, global average pooling and a linear classifier,
    so that the three compare layer for layer: ``cifar_plain`` is the
    feed-forward rectifier net whose gradients shatter, ``cifar_resnet`` the
    residual one, ``crelu_ll_net`` the paper's skip-free alternative (it trained
    such networks to about 200 layers: ``depth=200``).

    The stem has no ReLU and the classifier's bias starts at zero, so with
    ``looks_linear`` the whole network is a linear map of its input at
    initialisation: in eval mode, or in any mode with ``norm=False``.

    Args:
        num_classes: Output classes.
        in_channels: Input image channels.
        block: Block name or class (default ``"crelu_ll"``).
        depth: Weighted layers, 6n+2 (8, 14, 20, 56, 110, 200, ...).
        norm: BatchNorm after every convolution; False for none at all.
        looks_linear: LL initialisation; False for the CReLU-without-LL control.
        **kwargs: Passed to :class:`resnet_lightning.models.ResNet`.
    """
    n, remainder = divmod(depth - 2, 6)
    if remainder or n < 1:
        nearest = f"{6 * n + 2} or {6 * n + 8}" if n >= 1 else "8"
        raise ValueError(f"crelu_ll_net depth must be 6n+2 (8, 14, 20, ..., 200), got depth={depth}; try depth={nearest}")
    block_cls = get_block(block) if isinstance(block, str) else block or CReLULLBlock
    name = block if isinstance(block, str) else f"{block_cls.__module__}.{block_cls.__qualname__}"
    block_kwargs = dict(dict(looks_linear=looks_linear), **kwargs.pop("block_kwargs", None) or {})
    defaults = dict(widths=(16, 32, 64), stem="cifar", shortcut="B", norm_layer=None if norm else nn.Identity)
    model = ResNet(
        block_cls,
        [n] * 3,
        num_classes=num_classes,
        in_channels=in_channels,
        block_kwargs=block_kwargs,
        block_name=name,
        **dict(defaults, **kwargs),
    )
    # A ReLU after the stem would be the one rectifier outside the LL layers; the
    # first block's CReLU follows the stem instead. A zero bias makes the
    # classifier, and so the network at initialisation, linear rather than affine.
    model.relu = nn.Identity()
    nn.init.zeros_(model.fc.bias)
    return model
