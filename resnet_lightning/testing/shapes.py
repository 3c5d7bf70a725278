"""The block's shape contract at build time: the one check ``create_model`` and ``resnet-lightning plugins`` run.

A block built as ``block(in_channels, out_channels, stride, ...)`` must map
``(N, in_channels, H, W)`` to ``(N, out_channels, ceil(H/stride), ceil(W/stride))``.
:func:`~resnet_lightning.create_model` checks it of every network it builds, on the
meta device (shapes, no arithmetic), so a plugin block that breaks it is one line
naming the block, not a crash in the middle of a fit. :func:`check_block` checks it,
and much more, in detail.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ..models import BlockContractError
from ..models.residual import find_network

SIZE = 7  # odd, so that stride 2 has to round up: ceil(H / stride), not floor


@torch.no_grad()
def check_block_shape(block: nn.Module, name: str, in_channels: int, out_channels: int, stride: int, *, meta: bool = False) -> None:
    """Run a built block on zeros of shape ``(2, in_channels, 7, 7)`` in eval mode and check its output's shape.

    Eval mode: batch norm uses its running statistics and stochastic depth is off,
    so nothing about the block changes.

    Args:
        block: The block, as a network builds it.
        name: The block's name for the message (its registry name).
        in_channels: The input channels it was built for.
        out_channels: The output channels it was built for.
        stride: The stride it was built with.
        meta: Run it on the meta device, with meta tensors of its parameters' and buffers'
            shapes: no arithmetic, for blocks at a network's full width. (The first meta
            operation of a process imports ``torch._dynamo``, which Lightning imports anyway.)
            Where it cannot run there, the real run decides.

    Raises:
        BlockContractError: the block fails on the input, or returns another shape.
    """
    expected = (2, out_channels, math.ceil(SIZE / stride), math.ceil(SIZE / stride))
    was_training = block.training
    block.eval()
    try:
        out = _meta_output(block, in_channels) if meta else None
        if out is None:
            out = block(torch.zeros(2, in_channels, SIZE, SIZE))
    except Exception as exc:
        raise BlockContractError(
            f"block {name!r} failed on an input of shape [2, {in_channels}, {SIZE}, {SIZE}] "
            f"(in_channels={in_channels}, out_channels={out_channels}, stride={stride}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        block.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BlockContractError(
            f"block {name!r} breaks the block contract: with in_channels={in_channels}, "
            f"out_channels={out_channels}, stride={stride} it must map [2, {in_channels}, {SIZE}, {SIZE}] "
            f"to {list(expected)} (N, out_channels, ceil(H/stride), ceil(W/stride)), but returned {got}"
        )


def _meta_output(block: nn.Module, in_channels: int) -> torch.Tensor | None:
    """The block's output on the meta device, or None where it cannot run there (a tensor kept outside
    its parameters and buffers, say), so that a failure is reported only from a real run."""
    meta = {
        key: torch.empty_like(tensor, device="meta")
        for key, tensor in itertools.chain(block.named_parameters(), block.named_buffers())
    }
    try:
        return torch.func.functional_call(block, meta, (torch.zeros(2, in_channels, SIZE, SIZE, device="meta"),))
    except Exception:
        return None


def check_network_blocks(model: nn.Module, *, meta: bool = False) -> None:
    """:func:`check_block_shape` on each block of a network built on :class:`~resnet_lightning.models.ResNet`.

    Each block is checked with the shapes it was built for (``ResNet.block_shapes``);
    blocks of one class built for the same shapes (the third and later blocks of a
    stage) are checked once. A network without ``block_shapes`` is left alone.

    Args:
        model: The network, or a module wrapping it.
        meta: See :func:`check_block_shape`.

    Raises:
        BlockContractError: a block breaks the contract; the message names it and the shapes.
    """
    network = find_network(model)
    shapes = getattr(network, "block_shapes", None)
    if network is None or shapes is None:
        return
    name = getattr(network, "block_name", "?")
    seen: set[tuple[type, tuple[int, int, int]]] = set()
    for block, shape in zip(network.blocks(), shapes):
        if (type(block), tuple(shape)) not in seen:
            seen.add((type(block), tuple(shape)))
            check_block_shape(block, name, *shape, meta=meta)
