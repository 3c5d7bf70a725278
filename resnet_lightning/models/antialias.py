"""Anti-aliased down-sampling (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again").

A strided convolution or pooling subsamples without low-passing first, so a shift of the
input by one pixel can change the output a lot. Zhang splits each down-sampling into its
dense operation and a blurred subsampling (Fig. 3): a strided convolution becomes
``BlurPool(relu(conv_stride1(x)))``, a max-pool ``BlurPool(maxpool_stride1(x))``. Networks
get ``blur_pool=True``; each block asks :func:`downsampler` where its stride goes. A
shortcut's 1x1 projection stays strided, as in timm's ResNets with ``aa_layer=BlurPool2d``
(``resnetblur50``), whose state dicts then load as they are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BlurPool2d(nn.Module):
    """Binomial blur, then subsampling by ``stride``, channel by channel (timm's ``BlurPool2d``).

    The filter is the outer product of the binomial coefficients of ``filter_size - 1``
    (``[1, 2, 1] / 4`` for 3, Zhang's "Tri-3"), with reflection padding as in the paper.
    Maps ``(N, C, H, W)`` to ``(N, C, ceil(H / stride), ceil(W / stride))``. The filter is a
    non-persistent buffer: state dicts are those of the network without blurring.

    Args:
        channels: Channels of the input.
        stride: Subsampling factor.
        filter_size: Taps of the binomial filter per side (2 to 7).
    """

    def __init__(self, channels: int, stride: int = 2, filter_size: int = 3) -> None:
        super().__init__()
        if not 2 <= filter_size <= 7:
            raise ValueError(f"filter_size must be 2 to 7 taps, got {filter_size!r}")
        self.channels, self.stride, self.filter_size = channels, stride, filter_size
        # filter_size - 1 in all, the extra one after (Zhang's padding): floor((H - 1) / stride) + 1
        # = ceil(H / stride) outputs, as the block contract needs
        before, after = (filter_size - 1) // 2, filter_size // 2
        self.padding = (before, after, before, after)
        coefficients = torch.tensor([math.comb(filter_size - 1, k) for k in range(filter_size)], dtype=torch.float32)
        kernel = torch.outer(coefficients, coefficients) / coefficients.sum() ** 2  # (k, k), sums to 1
        self.register_buffer("filt", kernel.expand(channels, 1, filter_size, filter_size).contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Reflection needs a side longer than the padding; a 1x1 map is replicated instead.
        mode = "reflect" if min(x.shape[-2:]) > max(self.padding) else "replicate"
        x = F.pad(x, self.padding, mode=mode)  # (N, C, H + filter_size - 1, W + filter_size - 1)
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}, filter_size={self.filter_size}"


def downsampler(channels: int, stride: int, blur_pool: bool) -> tuple[int, nn.Module]:
    """Where a branch's stride goes: ``(conv stride, module after the activation)``.

    ``(stride, Identity())`` normally; with ``blur_pool`` and ``stride > 1``,
    ``(1, BlurPool2d(channels, stride))``: the convolution runs densely and the blur
    subsamples after its activation (Zhang 2019, Fig. 3, "ConvBlurPool").
    """
    if blur_pool and stride > 1:
        return 1, BlurPool2d(channels, stride)
    return stride, nn.Identity()
