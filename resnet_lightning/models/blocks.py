"""The built-in residual blocks, each registered as a ``resnet_lightning.blocks`` plugin.

Every block follows the public block contract (see :class:`Block`):
``Block(in_channels, out_channels, stride=1, **kwargs)`` maps
``(N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride))``.
Keyword arguments the framework passes (``norm_layer``, ``drop_path_rate``,
``shortcut``) are all optional. Layer names follow torchvision's ``resnet.py``
(``conv1``, ``bn1``, ..., ``downsample``) so its state dicts load unchanged.

Every block subclasses :class:`~resnet_lightning.models.residual.ResidualBlock`,
which builds what every block has (``drop_path``, the ``downsample`` shortcut);
a block defines only its branch (:meth:`build_branch` and ``branch(x)``),
``zero_init_last`` and, where it differs from ``branch_out + shortcut_out``,
``merge``. ``forward`` is ``merge(drop_path(branch(x)), shortcut(x))``, which the
analyses rely on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import UserError
from .antialias import downsampler
from .residual import ResidualBlock

NormLayer = Callable[[int], nn.Module]


class BlockContractError(UserError, ValueError):
    """A block breaks the block contract in a network being built (a wrong output shape, or
    a failure on its first input); the message names the block and the shapes.

    Raised by :func:`resnet_lightning.testing.check_block_shape`, which
    :func:`~resnet_lightning.create_model` runs on every network it builds.
    """


@runtime_checkable
class Block(Protocol):
    """The block contract a plugin implements (a ``torch.nn.Module`` subclass).

    Attributes:
        expansion: Output width / stage width; architectures multiply their stage
            widths by it (1 for two-conv blocks, 4 for bottlenecks). Optional.
        preactivation: True when the block ends without a norm/activation, so the
            network adds a final BN-ReLU before pooling (He et al. 2016). Optional.

    A block may also define ``zero_init_last()``, which the network calls when asked
    to zero-initialise every residual branch, and ``branch``/``shortcut``/``merge``
    (:class:`~resnet_lightning.models.residual.ResidualStructure`), which the
    analyses read; :class:`~resnet_lightning.models.residual.ResidualBlock` has all three.
    """

    expansion: ClassVar[int]

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=bias)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(ResidualBlock):
    """The original two-convolution block, post-activation (He et al. 2015, Fig. 2).

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``

    Args:
        stride: Stride of the first convolution.
        kernel_size: Size of both convolutions (odd).
        bias: Give the convolutions a bias (the seed slides' MNIST network does).
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut`` (see :class:`ResidualBlock`).
    """

    expansion: ClassVar[int] = 1

    def build_branch(
        self, in_channels: int, out_channels: int, stride: int, *, norm_layer: NormLayer, kernel_size: int = 3,
        bias: bool = False, **kwargs: Any,
    ) -> None:
        padding = kernel_size // 2
        conv_stride, aa = downsampler(out_channels, stride, self.blur_pool)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size, conv_stride, padding, bias=bias)
        self.bn1 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size, 1, padding, bias=bias)
        self.bn2 = norm_layer(out_channels)
        self.aa = aa  # the stride, after the activation, with blur_pool (Zhang 2019)

    def zero_init_last(self) -> None:
        # Each block starts as the identity (Goyal et al. 2017, "Accurate, Large
        # Minibatch SGD"): zero the last BN's scale in the residual branch.
        nn.init.zeros_(self.bn2.weight)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.aa(self.relu(self.bn1(self.conv1(x))))
        return self.bn2(self.conv2(out))

    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor:
        # Post-activation: the ReLU follows the addition (He et al. 2015, Fig. 2).
        return self.relu(branch_out + shortcut_out)


class PlainBlock(BasicBlock):
    """:class:`BasicBlock` without the shortcut: the plain-network control of the
    degradation experiment (He et al. 2015, Fig. 1 and Table 2).

    There is no residual branch to drop, so ``drop_path_rate`` and ``shortcut``
    are accepted and ignored, and there is no ``zero_init_last`` (zeroing the last
    BN would cut the signal). Its structure says so: ``shortcut(x)`` is None (no
    skip path) and ``merge(branch_out, None)`` is ``relu(branch_out)``, so the
    residual ratio skips it and the lesion study deletes it by the identity where
    it keeps the shape, as Veit et al. 2016 delete a layer of a plain network.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        kwargs.pop("drop_path_rate", None)
        kwargs.pop("shortcut", None)  # ignored: option "A" could not even be built where channels shrink
        # "B" builds the projection it then drops, as it always has: the random numbers its
        # construction draws keep a seeded plain network's initial weights what they were.
        super().__init__(in_channels, out_channels, stride, shortcut="B", **kwargs)
        self.downsample = None
        self.drop_path = nn.Identity()

    zero_init_last = None  # type: ignore[assignment]

    def shortcut(self, x: torch.Tensor) -> None:
        return None

    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor:
        return self.relu(branch_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(self.branch(x), None)  # nothing to drop: the branch is the only path


class Bottleneck(ResidualBlock):
    """1x1-3x3-1x1 bottleneck, stride on the 3x3 (torchvision's "ResNet v1.5").

    The stride sits on the 3x3 rather than the first 1x1 as in He et al. 2015;
    torchvision and NVIDIA found it ~0.5% more accurate on ImageNet. The inner
    width is ``out_channels // expansion * base_width / 64 * groups``, so
    ``groups``/``base_width`` give ResNeXt and wide variants as in torchvision.

    Args:
        stride: Stride of the 3x3 convolution.
        groups: Groups of the 3x3 convolution (ResNeXt cardinality).
        base_width: Width per group at the first stage (64 in ResNet).
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut`` (see :class:`ResidualBlock`).
    """

    expansion: ClassVar[int] = 4

    def build_branch(
        self, in_channels: int, out_channels: int, stride: int, *, norm_layer: NormLayer, groups: int = 1,
        base_width: int = 64, **kwargs: Any,
    ) -> None:
        width = int(out_channels // self.expansion * (base_width / 64.0)) * groups
        conv_stride, self.aa = downsampler(width, stride, self.blur_pool)
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, conv_stride, groups)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.aa(self.relu(self.bn2(self.conv2(out))))
        return self.bn3(self.conv3(out))

    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor:
        return self.relu(branch_out + shortcut_out)


class PreActBlock(ResidualBlock):
    """Full pre-activation two-convolution block (He et al. 2016, "Identity Mappings").

    ``x + conv2(relu(bn2(conv1(relu(bn1(x))))))``: nothing follows the addition,
    so the identity path is clean from input to output. A projection shortcut is
    applied to the pre-activated input and has no norm of its own.

    Args:
        stride: Stride of the first convolution.
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut`` (see :class:`ResidualBlock`).
    """

    expansion: ClassVar[int] = 1
    preactivation: ClassVar[bool] = True
    shortcut_norm: ClassVar[bool] = False

    def build_branch(self, in_channels: int, out_channels: int, stride: int, *, norm_layer: NormLayer, **kwargs: Any) -> None:
        conv_stride, self.aa = downsampler(out_channels, stride, self.blur_pool)
        self.bn1 = norm_layer(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, conv_stride)
        self.bn2 = norm_layer(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        # The branch ends in a convolution, not a norm (as in timm's ResNetV2).
        nn.init.zeros_(self.conv2.weight)

    # branch and shortcut both start from relu(bn1(x)) (a projection shortcut takes the
    # pre-activated input, He et al. 2016, Fig. 4e): forward computes it once, because
    # running bn1 twice in training would update its running statistics twice.
    # merge is the base class's plain addition: nothing follows it.

    def _branch(self, preact: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.aa(self.relu(self.bn2(self.conv1(preact)))))

    def _shortcut(self, x: torch.Tensor, preact: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(preact)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self._branch(self.relu(self.bn1(x)))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(self.relu(self.bn1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.relu(self.bn1(x))
        return self.merge(self.drop_path(self._branch(preact)), self._shortcut(x, preact))


class PreActBottleneck(ResidualBlock):
    """Full pre-activation bottleneck (He et al. 2016), stride on the 3x3.

    Args:
        stride: Stride of the 3x3 convolution.
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut`` (see :class:`ResidualBlock`).
    """

    expansion: ClassVar[int] = 4
    preactivation: ClassVar[bool] = True
    shortcut_norm: ClassVar[bool] = False

    def build_branch(self, in_channels: int, out_channels: int, stride: int, *, norm_layer: NormLayer, **kwargs: Any) -> None:
        width = out_channels // self.expansion
        conv_stride, self.aa = downsampler(width, stride, self.blur_pool)
        self.bn1 = norm_layer(in_channels)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = norm_layer(width)
        self.conv2 = conv3x3(width, width, conv_stride)
        self.bn3 = norm_layer(width)
        self.conv3 = conv1x1(width, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    _shortcut = PreActBlock._shortcut
    shortcut = PreActBlock.shortcut

    def _branch(self, preact: torch.Tensor) -> torch.Tensor:
        out = self.conv1(preact)
        out = self.conv2(self.relu(self.bn2(out)))
        return self.conv3(self.aa(self.relu(self.bn3(out))))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self._branch(self.relu(self.bn1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.relu(self.bn1(x))
        return self.merge(self.drop_path(self._branch(preact)), self._shortcut(x, preact))


class HighwayBlock(ResidualBlock):
    """Convolutional highway block (Srivastava et al. 2015, "Training Very Deep Networks").

    ``y = T(x) * H(x) + (1 - T(x)) * x`` with a learned transform gate
    ``T(x) = sigmoid(conv(x) + b)``. The gate bias starts negative so every layer
    begins by carrying its input through, which the paper found lets very deep
    highway networks train (it suggests -1 to -3; we take -2). Where the shape
    changes, the carried ``x`` goes through the selected shortcut.

    Args:
        stride: Stride of the transform and the gate.
        gate_bias: Initial bias of the transform gate.
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut`` (see :class:`ResidualBlock`).
    """

    expansion: ClassVar[int] = 1

    def build_branch(
        self, in_channels: int, out_channels: int, stride: int, *, norm_layer: NormLayer, gate_bias: float = -2.0,
        **kwargs: Any,
    ) -> None:
        conv_stride, self.aa = downsampler(out_channels, stride, self.blur_pool)  # for the gate too
        self.conv1 = conv3x3(in_channels, out_channels, conv_stride)
        self.bn1 = norm_layer(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.gate = conv3x3(in_channels, out_channels, conv_stride, bias=True)
        self.gate_bias = gate_bias
        self.reset_gate()

    def reset_gate(self) -> None:
        """Set the gate bias to its (negative) initial value."""
        nn.init.constant_(self.gate.bias, self.gate_bias)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    # The gate weighs both paths, so it belongs to both: branch(x) = T(x) * H(x) is what
    # stochastic depth drops (as before), shortcut(x) = (1 - T(x)) * carry(x) is what the
    # carry path delivers, and merge adds them (the base class's). Deleting the block in
    # the lesion study leaves (1 - T) * carry, the highway's own "carry" behaviour.
    # forward computes the gate once instead of in both methods.

    def _carry(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.aa(self.relu(self.bn1(self.conv1(x)))))))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.aa(self.gate(x))) * self._transform(x)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - torch.sigmoid(self.aa(self.gate(x)))) * self._carry(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.aa(self.gate(x)))  # (N, out, H', W'), in (0, 1)
        return self.merge(self.drop_path(gate * self._transform(x)), (1 - gate) * self._carry(x))
