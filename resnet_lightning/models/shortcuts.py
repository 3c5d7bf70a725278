"""The shortcut (identity) path of a residual block, in He et al. 2015's three options.

- ``"A"``: identity; where the shape changes, subsample by the stride and pad the
  new channels with zeros. No parameters (the paper's CIFAR-10 networks).
- ``"B"``: identity; a 1x1 projection (+ norm) only where the shape changes
  (torchvision's ``downsample``, the paper's ImageNet default).
- ``"C"``: a 1x1 projection (+ norm) on every block.

With ``avg_down`` (ResNet-D, He et al. 2019, Fig. 2c; timm's ``avg_down``) a shortcut that
subsamples averages ``stride`` x ``stride`` first and projects at stride 1, so the projection
reads every input position rather than one in ``stride**2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ShortcutType = Literal["A", "B", "C"]
SHORTCUT_TYPES = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::s, ::s]`` (or ``pool(x)``, ``avg_down``) with zero channels appended; parameter-free."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, pool: nn.Module | None = None) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"shortcut 'A' pads channels with zeros and cannot reduce them "
                f"({in_channels} -> {out_channels}); use shortcut='B' or 'C'"
            )
        self.extra_channels = out_channels - in_channels
        self.stride = stride
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride] if self.pool is None else self.pool(x)  # (N, C, ceil(H/s), ceil(W/s))
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def make_shortcut(
    kind: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
    avg_down: bool = False,
) -> nn.Module | None:
    """The shortcut module for a block, or None where it is the identity.

    Args:
        kind: ``"A"``, ``"B"`` or ``"C"`` (see the module docstring).
        in_channels: Channels entering the block.
        out_channels: Channels leaving the block.
        stride: The block's stride.
        norm_layer: Norm after a projection; None for none (pre-activation
            blocks project the already-normalised input, He et al. 2016).
        avg_down: Average first, then project at stride 1 (``downsample.0`` is the pool,
            an identity at stride 1, and ``.1`` the conv: timm's keys).
    """
    if kind not in SHORTCUT_TYPES:
        raise ValueError(f"unknown shortcut {kind!r}; expected one of {list(SHORTCUT_TYPES)}")
    reshapes = stride != 1 or in_channels != out_channels
    subsample = _average(stride) if avg_down else None
    if kind == "A":
        if not reshapes:
            return None
        return ZeroPadShortcut(in_channels, out_channels, stride, subsample if stride > 1 else None)
    if kind == "B" and not reshapes:
        return None
    projection = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1 if subsample is not None else stride, bias=False)
    layers = [projection] if norm_layer is None else [projection, norm_layer(out_channels)]
    return nn.Sequential(*([subsample] if subsample is not None else []), *layers)


def _average(stride: int) -> nn.Module:
    if stride == 1:
        return nn.Identity()  # kept, so the projection is downsample.1 in every block, as in timm
    return nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)  # (N, C, ceil(H/s), ceil(W/s))
