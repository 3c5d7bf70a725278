"""Plain ``torch.nn`` models: blocks, shortcuts, the flexible ResNet and its builders.

Nothing here imports Lightning.
"""

from .blocks import BasicBlock, Block, Bottleneck, HighwayBlock, PlainBlock, PreActBlock, PreActBottleneck
from .flops import count_macs, count_parameters
from .resnet import BlockContractError, ResNet
from .shortcuts import SHORTCUT_TYPES, ZeroPadShortcut, make_shortcut

__all__ = [
    "BasicBlock",
    "Block",
    "BlockContractError",
    "Bottleneck",
    "HighwayBlock",
    "PlainBlock",
    "PreActBlock",
    "PreActBottleneck",
    "ResNet",
    "SHORTCUT_TYPES",
    "ZeroPadShortcut",
    "count_macs",
    "count_parameters",
    "make_shortcut",
]
