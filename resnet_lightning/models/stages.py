"""``resnet_stages``: a ResNet whose shape is given stage by stage, for searching it.

Radosavovic et al. 2020 ("Designing Network Design Spaces") describe a network by
its stages, each a depth, a width and a block type; a search over that space learns
the shape. ``resnet_stages`` is that space over :class:`~.resnet.ResNet`: per-stage
``layers`` and ``widths``, and optionally ``blocks``, a registry name per stage (a
plugin's block as well as a built-in). A stage without its own block uses the
module's ``block`` (``--model.block``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .builders import BlockArg, resolve_block
from .resnet import ResNet

PER_STAGE = ("layers", "widths", "blocks")


def resnet_stages(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    block: BlockArg = None,
    layers: Sequence[int] = (1, 1, 1),
    widths: Sequence[int] = (16, 32, 64),
    blocks: Sequence[BlockArg] | None = None,
    **kwargs: Any,
) -> ResNet:
    """A ResNet of ``len(layers)`` stages, each its own depth, width and block.

    The CIFAR layout by default (3x3 stem, stages on 32x32, 16x16 and 8x8 maps for a
    32x32 input), with projection shortcuts where the shape changes (``shortcut="B"``),
    since a searched width may shrink from one stage to the next.

    Args:
        num_classes: Output classes.
        in_channels: Input image channels.
        block: The block of every stage that ``blocks`` does not name (default ``"basic"``).
        layers: Blocks per stage, e.g. ``[2, 3, 1]``.
        widths: Base width per stage, one per stage of ``layers``.
        blocks: A block (registry name or class) per stage; ``None`` in a stage (or no
            list) means ``block``.
        **kwargs: Passed to :class:`~.resnet.ResNet` (``stem``, ``shortcut``,
            ``drop_path_rate``, ``block_kwargs``, ...).

    Raises:
        ValueError: The per-stage lists are not all as long as ``layers``.
    """
    lengths = {"layers": len(layers), "widths": len(widths)}
    if blocks is not None:
        lengths["blocks"] = len(blocks)
    if len(set(lengths.values())) > 1:
        given = ", ".join(f"{name} {n} long" for name, n in lengths.items())
        raise ValueError(f"the per-stage lists differ in length ({given}); give one entry per stage in each")
    per_stage = [resolve_block(b if b is not None else block, "basic") for b in (blocks or [None] * len(layers))]
    options = dict(dict(stem="cifar", shortcut="B"), **kwargs)
    return ResNet(
        [cls for cls, _ in per_stage],
        list(layers),
        widths=list(widths),
        num_classes=num_classes,
        in_channels=in_channels,
        block_name=[name for _, name in per_stage],
        **options,
    )
