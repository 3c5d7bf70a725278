"""The built-in architectures, each registered as a ``resnet_lightning.architectures`` plugin.

Every builder follows the architecture contract
``arch(*, num_classes, in_channels, block=None, **kwargs) -> nn.Module`` and
is a two-line variant over :class:`~.resnet.ResNet`, in the manner of timm:
``dict(defaults, **kwargs)`` so that the user's keyword arguments win.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..registry import get_block
from .pretrained import torchvision_hook
from .resnet import ResNet

BlockArg = str | type | None


def resolve_block(block: BlockArg, default: str) -> tuple[type[nn.Module], str]:
    """The block class and a name for messages, from a registry name, a class or None."""
    if block is None:
        block = default
    if isinstance(block, str):
        return get_block(block), block
    if isinstance(block, type) and issubclass(block, nn.Module):
        return block, f"{block.__module__}.{block.__qualname__}"
    raise TypeError(f"block must be a registry name, an nn.Module subclass or None, got {block!r}")


def _resnet(block: BlockArg, default_block: str, layers: list[int], **kwargs: Any) -> ResNet:
    block_cls, name = resolve_block(block, default_block)
    return ResNet(block_cls, layers, block_name=name, **kwargs)


# --- ImageNet (He et al. 2015, Table 1; torchvision-compatible) ------------------


def resnet18(*, num_classes: int = 1000, in_channels: int = 3, block: BlockArg = None, **kwargs: Any) -> ResNet:
    """ResNet-18 (He et al. 2015): 11,689,512 parameters at 1000 classes."""
    return _resnet(block, "basic", [2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet34(*, num_classes: int = 1000, in_channels: int = 3, block: BlockArg = None, **kwargs: Any) -> ResNet:
    """ResNet-34 (He et al. 2015): 21,797,672 parameters, 3.6 GMACs at 224x224."""
    return _resnet(block, "basic", [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet50(*, num_classes: int = 1000, in_channels: int = 3, block: BlockArg = None, **kwargs: Any) -> ResNet:
    """ResNet-50 v1.5 (He et al. 2015; stride on the 3x3): 25,557,032 parameters, 4.1 GMACs."""
    return _resnet(block, "bottleneck", [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet101(*, num_classes: int = 1000, in_channels: int = 3, block: BlockArg = None, **kwargs: Any) -> ResNet:
    """ResNet-101 (He et al. 2015): 44,549,160 parameters."""
    return _resnet(block, "bottleneck", [3, 4, 23, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


def resnet152(*, num_classes: int = 1000, in_channels: int = 3, block: BlockArg = None, **kwargs: Any) -> ResNet:
    """ResNet-152 (He et al. 2015): 60,192,808 parameters."""
    return _resnet(block, "bottleneck", [3, 8, 36, 3], num_classes=num_classes, in_channels=in_channels, **kwargs)


# The optional ``pretrained_weights(name) -> state_dict`` hook of the architecture contract
# (docs/writing-a-plugin.md): torchvision's ImageNet weights, by torchvision's names.
resnet18.pretrained_weights = torchvision_hook("resnet18")
resnet34.pretrained_weights = torchvision_hook("resnet34")
resnet50.pretrained_weights = torchvision_hook("resnet50")
resnet101.pretrained_weights = torchvision_hook("resnet101")
resnet152.pretrained_weights = torchvision_hook("resnet152")


# --- CIFAR (He et al. 2015, Sec. 4.2) ----------------------------------------------


def cifar_resnet(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    block: BlockArg = None,
    depth: int = 20,
    **kwargs: Any,
) -> ResNet:
    """The CIFAR-10 ResNet of He et al. 2015, Sec. 4.2: depth 6n+2, widths 16/32/64.

    A 3x3 stem, three stages of n blocks on 32x32, 16x16 and 8x8 maps, and
    parameter-free option-A shortcuts by default, as in the paper. With a
    bottleneck-style block (``expansion`` > 1, three layers per block) the depth
    is 9n+2 instead, as for the pre-activation ResNet-164 (He et al. 2016).

    Args:
        num_classes: Output classes.
        in_channels: Input image channels.
        block: Block name or class (default ``"basic"``).
        depth: Weighted layers: 6n+2 (20, 32, 44, 56, 110, 1202) or 9n+2 for bottlenecks.
        **kwargs: Passed to :class:`~.resnet.ResNet` (``shortcut``, ``drop_path_rate``, ...).
    """
    block_cls, name = resolve_block(block, "basic")
    layers_per_block = 3 if getattr(block_cls, "expansion", 1) > 1 else 2
    n, remainder = divmod(depth - 2, 3 * layers_per_block)
    if remainder or n < 1:
        form = f"{3 * layers_per_block}n+2"
        raise ValueError(
            f"depth={depth} is not {form} for block {name!r} ({layers_per_block} layers per block); "
            f"try depth={3 * layers_per_block * max(n, 1) + 2}"
        )
    options = dict(dict(widths=(16, 32, 64), stem="cifar", shortcut="A"), **kwargs)
    return ResNet(block_cls, [n] * 3, num_classes=num_classes, in_channels=in_channels, block_name=name, **options)


def cifar_plain(*, block: BlockArg = None, **kwargs: Any) -> ResNet:
    """The plain (no-shortcut) counterpart of :func:`cifar_resnet`: the degradation control."""
    return cifar_resnet(block=block or "plain", **kwargs)


def cifar_resnet20(**kwargs: Any) -> ResNet:
    """ResNet-20 for CIFAR-10: 269,722 parameters, 8.75% test error in He et al. 2015."""
    return cifar_resnet(**dict(dict(depth=20), **kwargs))


def cifar_resnet32(**kwargs: Any) -> ResNet:
    """ResNet-32 for CIFAR-10: 464,154 parameters."""
    return cifar_resnet(**dict(dict(depth=32), **kwargs))


def cifar_resnet44(**kwargs: Any) -> ResNet:
    """ResNet-44 for CIFAR-10: 658,586 parameters."""
    return cifar_resnet(**dict(dict(depth=44), **kwargs))


def cifar_resnet56(**kwargs: Any) -> ResNet:
    """ResNet-56 for CIFAR-10: 853,018 parameters."""
    return cifar_resnet(**dict(dict(depth=56), **kwargs))


def cifar_resnet110(**kwargs: Any) -> ResNet:
    """ResNet-110 for CIFAR-10: 1,727,962 parameters."""
    return cifar_resnet(**dict(dict(depth=110), **kwargs))


def cifar_resnet1202(**kwargs: Any) -> ResNet:
    """ResNet-1202 for CIFAR-10: 19,421,274 parameters."""
    return cifar_resnet(**dict(dict(depth=1202), **kwargs))


def cifar_plain20(**kwargs: Any) -> ResNet:
    """Plain-20, the shallower net of the degradation experiment."""
    return cifar_plain(**dict(dict(depth=20), **kwargs))


def cifar_plain32(**kwargs: Any) -> ResNet:
    """Plain-32."""
    return cifar_plain(**dict(dict(depth=32), **kwargs))


def cifar_plain44(**kwargs: Any) -> ResNet:
    """Plain-44."""
    return cifar_plain(**dict(dict(depth=44), **kwargs))


def cifar_plain56(**kwargs: Any) -> ResNet:
    """Plain-56, which trains to a higher error than plain-20 (He et al. 2015, Fig. 1)."""
    return cifar_plain(**dict(dict(depth=56), **kwargs))


def cifar_plain110(**kwargs: Any) -> ResNet:
    """Plain-110."""
    return cifar_plain(**dict(dict(depth=110), **kwargs))


def cifar_plain1202(**kwargs: Any) -> ResNet:
    """Plain-1202."""
    return cifar_plain(**dict(dict(depth=1202), **kwargs))


def preact_resnet(*, block: BlockArg = None, depth: int = 164, **kwargs: Any) -> ResNet:
    """Pre-activation ResNet for CIFAR (He et al. 2016): bottlenecks, depth 9n+2.

    ResNet-164 (1.7M parameters, 5.46% CIFAR-10 error) and ResNet-1001 (10.2M,
    4.92%) in the paper; projection shortcuts where the shape changes.
    """
    options = dict(dict(shortcut="B"), **kwargs)
    return cifar_resnet(block=block or "preact_bottleneck", depth=depth, **options)


# --- The seed slides' MNIST network ------------------------------------------------


def mnist_resnet(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    block: BlockArg = None,
    num_blocks: int = 25,
    channels: int = 16,
    kernel_size: int = 3,
    **kwargs: Any,
) -> ResNet:
    """The seed slides' MNIST ResNet: 117,802 parameters with its defaults.

    A 1x1 convolution from the input to ``channels``, ``num_blocks`` blocks of two
    ``kernel_size`` convolutions with bias and two BN at constant width, a global
    average pool and one linear layer.
    """
    block_kwargs = dict(dict(kernel_size=kernel_size, bias=True), **kwargs.pop("block_kwargs", {}))
    return _resnet(
        block,
        "basic",
        [num_blocks],
        **dict(
            dict(widths=(channels,), stem="pointwise"),
            num_classes=num_classes,
            in_channels=in_channels,
            block_kwargs=block_kwargs,
            **kwargs,
        ),
    )
