"""Finding a network's residual blocks and their shortcut paths.

The diagnostics and the lesion study both need "the blocks, in order" and, for a
block, "the path its input takes around the residual branch". Every built-in
network is a :class:`~resnet_lightning.models.ResNet`, whose ``blocks()`` lists
them; every built-in residual block keeps its shortcut in ``downsample`` (None is
the identity) and passes its branch output through ``drop_path`` just before the
addition. Plugin models that follow the same conventions get every analysis here.
"""

from __future__ import annotations

from torch import nn


def find_network(module: nn.Module) -> nn.Module | None:
    """The first submodule (``module`` included) with a ``blocks()`` method, or None.

    A LightningModule wrapping a ResNet (``ResNetClassifier.model``) resolves to the ResNet.
    """
    for m in module.modules():
        if callable(getattr(m, "blocks", None)):
            return m
    return None


def residual_blocks(module: nn.Module) -> list[nn.Module]:
    """The network's blocks from input to output; empty when it has no ``blocks()``."""
    network = find_network(module)
    return list(network.blocks()) if network is not None else []


def has_shortcut(block: nn.Module) -> bool:
    """Whether the block has a residual branch around a shortcut path.

    Plain blocks (no shortcut) are told apart by ``drop_path`` being absent or an
    ``nn.Identity`` *and* no ``downsample``; every built-in residual block has a
    ``torchvision.ops.StochasticDepth`` there even at rate 0.
    """
    drop_path = getattr(block, "drop_path", None)
    return drop_path is not None and not isinstance(drop_path, nn.Identity) and hasattr(block, "downsample")


def shortcut_path(block: nn.Module) -> nn.Module | None:
    """The module the block's input takes around its residual branch, or None.

    ``downsample`` when the block has one (projection or zero-padding shortcut),
    the identity otherwise; None for a block without a shortcut (plain blocks).
    """
    if not has_shortcut(block):
        return None
    return block.downsample if block.downsample is not None else nn.Identity()
