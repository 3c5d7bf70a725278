"""The stems of :class:`~.resnet.ResNet`: what turns the image into the first stage's input.

Each returns ``(conv1, bn1, relu, maxpool)``, torchvision's names, so state dicts load:

- ``"imagenet"``: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool (He et al. 2015, Table 1).
- ``"deep"``: three 3x3 convs (the first at stride 2) in ``conv1``, then BN, ReLU and the
  max-pool: ResNet-C of He et al. 2019 ("Bag of Tricks", Fig. 2b), timm's ``stem_type="deep"``
  (inner width half the output: 32, 32, 64 for ResNet-50). Three 3x3 cost about as much as
  one 7x7 and see as far, with two more non-linearities.
- ``"cifar"``: 3x3 conv, BN, ReLU (He et al. 2015, Sec. 4.2).
- ``"pointwise"``: a 1x1 conv with bias and nothing else (the seed slides' MNIST network).

With ``blur_pool`` the max-pool becomes max at stride 1 then a blurred subsampling (Zhang
2019, "MaxBlurPool"); the strided first convolution stays, as in Zhang's and timm's ResNets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import nn

from .antialias import BlurPool2d

StemType = Literal["imagenet", "deep", "cifar", "pointwise"]
STEM_TYPES = ("imagenet", "deep", "cifar", "pointwise")


def make_stem(
    stem: str, in_channels: int, width: int, norm_layer: Callable[[int], nn.Module], blur_pool: bool = False
) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """``(conv1, bn1, relu, maxpool)`` of a stem with ``width`` output channels."""
    if stem == "pointwise":
        conv = nn.Conv2d(in_channels, width, kernel_size=1, bias=True)
        return conv, nn.Identity(), nn.Identity(), nn.Identity()
    if stem == "cifar":
        conv = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        return conv, norm_layer(width), nn.ReLU(inplace=True), nn.Identity()
    if stem == "deep":
        inner = width // 2
        conv: nn.Module = nn.Sequential(  # timm's layout: conv1.0, conv1.1, ..., conv1.6
            nn.Conv2d(in_channels, inner, 3, stride=2, padding=1, bias=False),
            norm_layer(inner),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, inner, 3, stride=1, padding=1, bias=False),
            norm_layer(inner),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, width, 3, stride=1, padding=1, bias=False),
        )
    else:
        conv = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
    if blur_pool:
        pool: nn.Module = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1), BlurPool2d(width, 2))
    else:
        pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return conv, norm_layer(width), nn.ReLU(inplace=True), pool
