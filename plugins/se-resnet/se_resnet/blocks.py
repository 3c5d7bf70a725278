"""Squeeze-and-Excitation residual blocks (Hu et al. 2018, "Squeeze-and-Excitation Networks").

An SE module rescales each channel of the residual branch by a gate computed
from the whole feature map: global average pooling ("squeeze"), then
FC-ReLU-FC-sigmoid with a bottleneck of ``channels / reduction`` ("excitation").
As in the paper's SE-ResNet module (Fig. 3), the gate is applied to the branch
before it is added to the identity, so the shortcut stays untouched.

The blocks are resnet-lightning's own ``BasicBlock`` and ``Bottleneck`` with an
``se`` module added, so their other layer names are torchvision's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnet_lightning.models import BasicBlock, Bottleneck


class SqueezeExcitation(nn.Module):
    """``x * sigmoid(fc2(relu(fc1(avgpool(x)))))`` (Hu et al. 2018, Fig. 1 and Eq. 2-3).

    The same modules and names as ``torchvision.ops.SqueezeExcitation`` (``avgpool``,
    ``fc1``, ``fc2`` as 1x1 convolutions with bias, ``activation``, ``scale_activation``),
    so state dicts move between the two; written out here because importing
    torchvision.ops costs a second or more (it imports torch._dynamo) in every process
    that loads this plugin.
    """

    def __init__(self, input_channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))  # (N, C, 1, 1)
        return scale * x


def squeeze_excitation(channels: int, reduction: int) -> SqueezeExcitation:
    """The SE module (1x1 convolutions with bias as the two FC layers, as torchvision's)."""
    if not isinstance(reduction, int) or reduction < 1:
        raise ValueError(f"reduction must be a positive integer (16 in Hu et al. 2018), got {reduction!r}")
    # At least one hidden unit, so narrow test networks (16 channels, r=16 or more) still build.
    return SqueezeExcitation(channels, max(1, channels // reduction))


class SEBasicBlock(BasicBlock):
    """Two-convolution residual block with SE on the branch (SE-ResNet-18/34).

    ``relu(se(bn2(conv2(relu(bn1(conv1(x)))))) + shortcut(x))``

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution.
        reduction: Channel reduction ratio r of the excitation (16 in the paper,
            which found it a good balance of accuracy and complexity).
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut`` and the other
            options of :class:`resnet_lightning.models.BasicBlock`.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, reduction: int = 16, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, stride, **kwargs)
        self.se = squeeze_excitation(out_channels, reduction)

    # Only the branch changes: shortcut, merge (relu after the addition), stochastic depth
    # and zero-init (bn2's scale; SE of zero is zero) come from the core's block, whose
    # forward is merge(drop_path(branch(x)), shortcut(x)). The analyses see the SE as part
    # of the residual branch, where Hu et al. 2018 (Fig. 3) put it.
    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.aa(self.relu(self.bn1(self.conv1(x))))  # aa: the stride with blur_pool, else the identity
        return self.se(self.bn2(self.conv2(out)))  # (N, out, H', W'), each channel scaled by its gate


class SEBottleneck(Bottleneck):
    """Bottleneck (stride on the 3x3, torchvision's v1.5) with SE on the branch (SE-ResNet-50).

    SE-ResNet-50 built from it has 28,088,024 parameters at 1000 classes, the
    28.1M that Hu et al. 2018 report.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (stage width x 4).
        stride: Stride of the 3x3 convolution.
        reduction: Channel reduction ratio r of the excitation (16 in the paper).
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut``, ``groups``,
            ``base_width`` (see :class:`resnet_lightning.models.Bottleneck`).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, reduction: int = 16, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, stride, **kwargs)
        self.se = squeeze_excitation(out_channels, reduction)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.aa(self.relu(self.bn2(self.conv2(out))))  # aa: the stride with blur_pool, else the identity
        return self.se(self.bn3(self.conv3(out)))  # (N, out, H', W')
