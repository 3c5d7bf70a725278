"""A block that keeps the contract and one that breaks it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ScaledBasicBlock(nn.Module):
    """``relu(scale * conv(relu(conv(x))) + shortcut(x))``: a minimal block that keeps the contract.

    It takes the framework's keyword arguments through ``**kwargs`` and uses none
    of them, as a third-party block is free to do.
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, scale: float = 0.5, **kwargs: Any) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(self.scale * out + self.shortcut(x))


class IgnoresStrideBlock(nn.Module):
    """Changes the channels but never the spatial size: breaks the contract when stride is 2."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)  # stride ignored on purpose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))
