"""A different block under the name rl-test-plugin uses."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class OtherBlock(nn.Module):
    """``relu(conv(x))`` with a strided 3x3: keeps the contract, but it is not rl-test-plugin's block."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))
