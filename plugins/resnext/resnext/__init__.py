"""ResNeXt (Xie et al. 2017) as a resnet-lightning plugin.

Registered through entry points (see ``pyproject.toml``): block
``resnext_bottleneck``, architectures ``resnext50_32x4d`` and ``resnext101_32x8d``.
"""

from .blocks import ResNeXtBottleneck
from .models import resnext50_32x4d, resnext101_32x8d

__all__ = ["ResNeXtBottleneck", "resnext101_32x8d", "resnext50_32x4d"]
