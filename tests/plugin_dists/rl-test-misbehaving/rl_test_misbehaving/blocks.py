"""A block that breaks the shape contract and one that keeps it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnet_lightning.models import ResidualBlock


class WrongShapeBlock(nn.Module):
    """Always returns ``in_channels`` channels: wrong wherever a stage widens."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FineBlock(ResidualBlock):
    """A correct block in the same distribution: the others' faults must not hide it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, stride, **kwargs)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))
