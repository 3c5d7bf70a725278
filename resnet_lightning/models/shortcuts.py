"""The shortcut (identity) path of a residual block, in He et al. 2015's three options.

- ``"A"``: identity; where the shape changes, subsample by the stride and pad the
  new channels with zeros. No parameters (the paper's CIFAR-10 networks).
- ``"B"``: identity; a 1x1 projection (+ norm) only where the shape changes
  (torchvision's ``downsample``, the paper's ImageNet default).
- ``"C"``: a 1x1 projection (+ norm) on every block.
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
    """Option A: ``x[:, :, ::s, ::s]`` with zero channels appended; parameter-free."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"shortcut 'A' pads channels with zeros and cannot reduce them "
                f"({in_channels} -> {out_channels}); use shortcut='B' or 'C'"
            )
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (N, C, ceil(H/s), ceil(W/s))
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def make_shortcut(
    kind: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
) -> nn.Module | None:
    """The shortcut module for a block, or None where it is the identity.

    Args:
        kind: ``"A"``, ``"B"`` or ``"C"`` (see the module docstring).
        in_channels: Channels entering the block.
        out_channels: Channels leaving the block.
        stride: The block's stride.
        norm_layer: Norm after a projection; None for none (pre-activation
            blocks project the already-normalised input, He et al. 2016).
    """
    if kind not in SHORTCUT_TYPES:
        raise ValueError(f"unknown shortcut {kind!r}; expected one of {list(SHORTCUT_TYPES)}")
    reshapes = stride != 1 or in_channels != out_channels
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride) if reshapes else None
    if kind == "B" and not reshapes:
        return None
    projection = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
    if norm_layer is None:
        return nn.Sequential(projection)
    return nn.Sequential(projection, norm_layer(out_channels))
