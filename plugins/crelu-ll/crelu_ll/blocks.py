"""CReLU convolutions with Looks-Linear (LL) initialisation, and a feed-forward block of two.

Balduzzi et al. 2017 ("The Shattered Gradients Problem: If resnets are the
answer, then what is the question?") show that the gradients of deep
rectifier networks without skip connections decorrelate with depth until they
look like white noise, and that LL initialisation avoids it without skip
connections: use the concatenated ReLU ``CReLU(x) = [relu(x), relu(-x)]``
(Shang et al. 2016) and start every weight mirrored, ``W = [W~, -W~]``, so that

    W . CReLU(x) = W~ relu(x) - W~ relu(-x) = W~ x.

At initialisation the network is exactly linear (its gradients do not shatter);
the two halves are separate parameters, so training makes it nonlinear as far
as the data asks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


def crelu(x: torch.Tensor) -> torch.Tensor:
    """Concatenated ReLU (Shang et al. 2016): ``(N, C, H, W) -> (N, 2C, H, W)``, ``[relu(x), relu(-x)]``."""
    return torch.cat([F.relu(x), F.relu(-x)], dim=1)


class LLConv2d(nn.Module):
    """A convolution of ``CReLU(x)``, Looks-Linear initialised: ``conv(CReLU(x), [W~, -W~])``.

    ``W~`` is drawn orthogonal (Saxe et al. 2014): at initialisation the layer is
    the linear convolution ``W~ * x``, and an orthogonal ``W~`` keeps the signal's
    scale through any depth. (The LL property holds for any ``W~``.)

    Deliberately not an ``nn.Conv2d``: the framework's ResNet re-initialises every
    ``nn.Conv2d`` with He init after building, which would erase the mirror.

    Args:
        in_channels: Channels of ``x`` (the weight sees twice as many).
        out_channels: Output channels.
        kernel_size: Odd kernel size; padding keeps ``ceil(H / stride)``.
        stride: Convolution stride.
        bias: Add a bias (initialised to zero, so the layer stays linear, not affine).
        looks_linear: Mirror the weight; False draws both halves independently
            (He init), the CReLU-without-LL control of the paper.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, *, bias: bool = False, looks_linear: bool = True
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so the output is ceil(H / stride) high, got {kernel_size}")
        self.weight = nn.Parameter(torch.empty(out_channels, 2 * in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.stride, self.padding, self.looks_linear = stride, kernel_size // 2, looks_linear
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw the weight again: mirrored orthogonal halves, or independent He-initialised ones."""
        half = self.weight.shape[1] // 2
        if self.looks_linear:
            mirrored = nn.init.orthogonal_(torch.empty_like(self.weight[:, :half]))  # (out, in, k, k)
            self.weight.copy_(torch.cat([mirrored, -mirrored], dim=1))
        else:
            nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(crelu(x), self.weight, self.bias, self.stride, self.padding)  # (N, out, H', W')

    def extra_repr(self) -> str:
        out, in2, k, _ = self.weight.shape
        return f"{in2 // 2}, {out}, kernel_size={k}, stride={self.stride}, bias={self.bias is not None}, looks_linear={self.looks_linear}"


class CReLULLBlock(nn.Module):
    """Two LL-initialised CReLU convolutions, each followed by a norm, and no shortcut.

    ``norm2(llconv2(norm1(llconv1(x))))``, where each ``llconv`` applies CReLU to
    its input first: a plain feed-forward block, the paper's alternative to skip
    connections. It ends in a norm, not a rectifier, so the next block's CReLU
    sees the whole signal.

    Linear at initialisation: exactly, with ``norm_layer=nn.Identity`` in train or
    eval mode; with BatchNorm in eval mode (fresh running statistics make it a
    scalar multiple). In train mode BatchNorm normalises with the batch's
    statistics, which is not a linear map of one input.

    There is no residual branch, so ``drop_path_rate`` and ``shortcut`` are
    accepted and ignored, and there is no ``zero_init_last`` (zeroing a layer
    would cut the signal), as for the core's ``plain`` block. Its residual
    structure says so: ``shortcut(x)`` is None and ``merge(branch_out, None)`` is
    ``branch_out``, so the residual ratio skips it and the lesion study deletes it
    by the identity where it keeps the shape (Veit et al. 2016's plain-network case).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution.
        norm_layer: Norm constructor (BatchNorm2d; ``nn.Identity`` for none).
        kernel_size: Size of both convolutions (odd).
        bias: Give the convolutions a (zero-initialised) bias.
        looks_linear: LL initialisation; False for the CReLU control.
    """

    expansion: ClassVar[int] = 1
    zero_init_last = None  # no residual branch to zero

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        kernel_size: int = 3,
        bias: bool = False,
        looks_linear: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.conv1 = LLConv2d(in_channels, out_channels, kernel_size, stride, bias=bias, looks_linear=looks_linear)
        self.bn1 = norm_layer(out_channels)
        self.conv2 = LLConv2d(out_channels, out_channels, kernel_size, bias=bias, looks_linear=looks_linear)
        self.bn2 = norm_layer(out_channels)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.bn1(self.conv1(x))))

    def shortcut(self, x: torch.Tensor) -> None:
        return None  # no skip path: the point of the LL initialisation (Balduzzi et al. 2017)

    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor:
        return branch_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(self.branch(x), self.shortcut(x))
