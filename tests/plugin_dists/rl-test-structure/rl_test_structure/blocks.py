"""Two outside blocks with none of the core's attribute names (no ``downsample``, no ``drop_path``).

- :class:`BodySkipBlock` subclasses :class:`resnet_lightning.models.ResidualBlock` and
  defines only ``branch``: it gets the shortcut, the merge, stochastic depth and
  zero-init from the base class.
- :class:`DuckTypedBlock` subclasses nothing of the core: it defines ``branch``,
  ``shortcut`` and ``merge`` itself and, as timm does, keeps ``self.stochastic = None``
  when its drop rate is 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnet_lightning.models import DropPath, ResidualBlock


class BodySkipBlock(ResidualBlock):
    """``relu(body(x) + skip(x))``, the body a conv-norm-relu-conv-norm stack in one Sequential."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, norm_layer: Any = nn.BatchNorm2d,
                 drop_path_rate: float = 0.0, shortcut: str = "B", **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, stride, drop_path_rate=drop_path_rate, shortcut=None)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), norm_layer(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), norm_layer(out_channels),
        )
        # The base class would call it `downsample`; any name works once shortcut() says so.
        self.skip = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), norm_layer(out_channels))
            if stride != 1 or in_channels != out_channels else nn.Identity()
        )

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x)

    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor:
        return torch.relu(branch_out + shortcut_out)


class DuckTypedBlock(nn.Module):
    """``residual(x) * 0.5 + project(x)`` without the core's base class, pre-activation style."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, drop_path_rate: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        )
        self.project = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        self.stochastic = DropPath(drop_path_rate) if drop_path_rate > 0 else None  # timm: None at rate 0

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.residual(x)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x)

    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor:
        return branch_out + shortcut_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.stochastic is not None:
            out = self.stochastic(out)
        return self.merge(out, self.shortcut(x))
