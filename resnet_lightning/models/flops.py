"""Multiply-accumulate counts from PyTorch's own FLOP counter."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_macs(model: nn.Module, input_size: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass at ``input_size`` (batch included).

    Uses :class:`torch.utils.flop_counter.FlopCounterMode`, which counts a
    multiply-add as two FLOPs; MACs are half of its total. ResNet-50 at
    ``(1, 3, 224, 224)`` gives about 4.1 G, as torchvision documents.

    Args:
        model: Any module; run in eval mode without gradients, then restored.
        input_size: Shape of the input tensor, e.g. ``(1, 3, 224, 224)``.
    """
    if len(input_size) < 2 or any(int(s) < 1 for s in input_size):
        raise ValueError(f"input_size must be a shape like (1, 3, 224, 224), got {tuple(input_size)}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(*input_size, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
