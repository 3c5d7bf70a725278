"""Plain ``torch.nn`` models: blocks, shortcuts, the flexible ResNet and its builders.

Nothing here imports Lightning.
"""

from .blocks import BasicBlock, Block, BlockContractError, Bottleneck, HighwayBlock, PlainBlock, PreActBlock, PreActBottleneck
from .residual import (
    DropPath,
    ResidualBlock,
    ResidualStructure,
    ResidualStructureWarning,
    find_network,
    has_structure,
    residual_blocks,
    structured_blocks,
)
from .flops import count_macs, count_parameters
from .resnet import ResNet
from .shortcuts import SHORTCUT_TYPES, ZeroPadShortcut, make_shortcut

__all__ = [
    "BasicBlock",
    "Block",
    "BlockContractError",
    "Bottleneck",
    "DropPath",
    "HighwayBlock",
    "PlainBlock",
    "PreActBlock",
    "PreActBottleneck",
    "ResNet",
    "ResidualBlock",
    "ResidualStructure",
    "ResidualStructureWarning",
    "SHORTCUT_TYPES",
    "ZeroPadShortcut",
    "count_macs",
    "count_parameters",
    "find_network",
    "has_structure",
    "make_shortcut",
    "residual_blocks",
    "structured_blocks",
]
