"""Squeeze-and-Excitation ResNets (Hu et al. 2018) as a resnet-lightning plugin.

Registered through entry points (see ``pyproject.toml``): blocks ``se_basic`` and
``se_bottleneck``, architectures ``se_resnet18``, ``se_resnet34`` and ``se_resnet50``.
"""

from .blocks import SEBasicBlock, SEBottleneck
from .models import se_resnet18, se_resnet34, se_resnet50

__all__ = ["SEBasicBlock", "SEBottleneck", "se_resnet18", "se_resnet34", "se_resnet50"]
