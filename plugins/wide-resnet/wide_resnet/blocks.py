"""The wide basic block: pre-activation, two 3x3 convolutions, dropout between them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnet_lightning.models import PreActBlock


class WideBasicBlock(PreActBlock):
    """WRN's B(3,3) block (Zagoruyko & Komodakis 2016, Fig. 1d).

    ``x + conv2(dropout(relu(bn2(conv1(relu(bn1(x)))))))``: the full
    pre-activation block of He et al. 2016 with dropout between the two
    convolutions, which the paper found to regularise wide networks better than
    dropout on the identity path (Sec. 2.4). Where the shape changes, the
    shortcut is a 1x1 convolution of the pre-activated input, as in the
    reference code.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (the stage width, ``16k``, ``32k`` or ``64k``).
        stride: Stride of the first convolution.
        dropout: Dropout probability between the convolutions (0.3 in the
            paper's dropout experiments, 0 otherwise).
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut`` (see
            :class:`resnet_lightning.models.PreActBlock`).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, stride, **kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (the paper uses 0.3), got {dropout!r}")
        self.dropout = nn.Dropout(dropout)

    # PreActBlock computes relu(bn1(x)) once and hands it to _branch and to the
    # projection shortcut; only the branch differs here (the dropout), so branch(x),
    # shortcut(x), merge and forward all come from the core's block.
    def _branch(self, preact: torch.Tensor) -> torch.Tensor:
        out = self.conv1(preact)
        return self.conv2(self.dropout(self.aa(self.relu(self.bn2(out)))))  # aa: the stride with blur_pool  # (N, out, H', W')
