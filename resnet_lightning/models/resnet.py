"""One flexible ResNet that every built-in architecture is an instance of.

It knows blocks only through the block contract (constructor signature,
``expansion``, optional ``preactivation`` and ``zero_init_last``), so a plugin
block works in every architecture. Building runs no forward pass: the shape
contract is checked once, by :func:`~resnet_lightning.create_model`, on the
meta device (:func:`resnet_lightning.testing.check_network_blocks`). Module names follow torchvision's
``resnet.py`` (``conv1``, ``bn1``, ``maxpool``, ``layer1``..``layerN``, ``fc``):
torchvision's state dicts load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .stems import STEM_TYPES, StemType, make_stem


class ResNet(nn.Module):
    """A residual network: stem, stages of blocks, global average pool, linear head.

    Args:
        block: Block class (see :class:`resnet_lightning.models.blocks.Block`), or one per
            stage (a design space in the sense of Radosavovic et al. 2020: each stage
            its own block, depth and width).
        layers: Number of blocks in each stage.
        widths: Base width of each stage; a stage outputs ``width * block.expansion``.
        stem: ``"imagenet"`` (7x7/2 conv, BN, ReLU, 3x3/2 max-pool; He et al. 2015
            Table 1), ``"deep"`` (three 3x3 convs instead of the 7x7: ResNet-C of He et al.
            2019, timm's ``stem_type="deep"``), ``"cifar"`` (3x3 conv, BN, ReLU; Sec. 4.2) or
            ``"pointwise"`` (a 1x1 conv with bias, the seed slides' MNIST network); see
            :mod:`~.stems`.
        stem_width: Channels out of the stem (default ``widths[0]``).
        num_classes: Size of the output logits.
        in_channels: Channels of the input images.
        shortcut: ``"A"``, ``"B"`` or ``"C"`` (He et al. 2015, Sec. 4.1).
        avg_down: Down-sampling shortcuts average 2x2 then project at stride 1: ResNet-D
            (He et al. 2019, Fig. 2c; timm's ``avg_down``). With ``stem="deep"``, ResNet-50
            is timm's ``resnet50d``.
        blur_pool: Anti-aliased down-sampling everywhere (Zhang 2019): each strided
            convolution runs at stride 1 and a binomial blur subsamples after its
            activation; the stem's max-pool becomes max, then blur (:mod:`~.antialias`).
            Blocks are passed ``avg_down`` / ``blur_pool`` only when set.
        drop_path_rate: Stochastic depth: the last block is dropped with this
            probability, earlier ones linearly less (Huang et al. 2016, Eq. 4).
        zero_init_residual: Zero the last layer of each residual branch (blocks
            that define ``zero_init_last``) so each block starts as the identity.
        norm_layer: Norm constructor for stem and blocks (BatchNorm2d).
        block_kwargs: Extra keyword arguments for every block.
        block_name: Name used in error messages (the registry name), or one per stage;
            per-stage names differing are joined as ``basic/se_basic/highway``.

    Attributes:
        block_shapes: ``(in_channels, out_channels, stride)`` each block was built
            with, in :meth:`blocks` order: what the block contract says it maps
            ``(N, in_channels, H, W)`` to (``(N, out_channels, ceil(H/stride), ceil(W/stride))``).
        feature_info: One dict per feature map, as timm's: ``num_chs``, ``reduction`` (input
            side / map side) and ``module``; index 0 is the stem (before the max-pool), index
            i the output of stage i (:meth:`forward_intermediates`).
    """

    def __init__(
        self,
        block: type[nn.Module] | Sequence[type[nn.Module]],
        layers: Sequence[int],
        *,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: StemType = "imagenet",
        stem_width: int | None = None,
        num_classes: int = 1000,
        in_channels: int = 3,
        shortcut: str = "B",
        avg_down: bool = False,
        blur_pool: bool = False,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = False,
        norm_layer: Callable[[int], nn.Module] | None = None,
        block_kwargs: dict[str, Any] | None = None,
        block_name: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        _check_arguments(layers, widths, stem, num_classes, in_channels, drop_path_rate)
        norm_layer = norm_layer or nn.BatchNorm2d
        stage_blocks, names = _per_stage(block, block_name, len(layers))
        stem_width = stem_width or widths[0]
        self.block_name = names[0] if len(set(names)) == 1 else "/".join(names)

        self.conv1, self.bn1, self.relu, self.maxpool = make_stem(stem, in_channels, stem_width, norm_layer, blur_pool)

        total_blocks = sum(layers)
        channels, index = stem_width, 0
        self.block_shapes: list[tuple[int, int, int]] = []
        for stage, (depth, width, stage_block, name) in enumerate(zip(layers, widths, stage_blocks, names), start=1):
            # Passed only when asked for: a plugin block without these options still builds.
            make_block = _with_options(stage_block, name, avg_down=avg_down, blur_pool=blur_pool)
            blocks = []
            for i in range(depth):
                index += 1
                stride = 2 if stage > 1 and i == 0 else 1
                out_channels = width * getattr(stage_block, "expansion", 1)
                blocks.append(
                    make_block(
                        channels,
                        out_channels,
                        stride,
                        norm_layer=norm_layer,
                        # Huang et al. 2016, Eq. 4: p_l = 1 - l/L * (1 - p_L)
                        drop_path_rate=drop_path_rate * index / total_blocks,
                        shortcut=shortcut,
                        **(block_kwargs or {}),
                    )
                )
                self.block_shapes.append((channels, out_channels, stride))
                channels = out_channels
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.num_stages = len(layers)

        # Pre-activation blocks end with a convolution: normalise before pooling
        # (He et al. 2016, "Identity Mappings", Sec. 4).
        preact = getattr(stage_blocks[-1], "preactivation", False)
        self.final_norm = nn.Sequential(norm_layer(channels), nn.ReLU(inplace=True)) if preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        self.feature_info = _feature_info(self, stem_width)

        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # He et al. 2015 ("Delving Deep into Rectifiers") initialisation, as torchvision.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for blk in self.blocks():
                if callable(getattr(blk, "zero_init_last", None)):
                    blk.zero_init_last()

    def blocks(self) -> Iterator[nn.Module]:
        """The residual blocks in order from input to output."""
        for stage in range(1, self.num_stages + 1):
            yield from getattr(self, f"layer{stage}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Everything before pooling: ``(N, C_in, H, W) -> (N, num_features, H', W')``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        return self.final_norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooling and classifier: ``(N, num_features, H', W') -> (N, num_classes)``, or the pooled features."""
        x = self.avgpool(x).flatten(1)  # (N, num_features)
        return x if pre_logits else self.fc(x)  # (N, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """The feature maps at ``indices`` of :attr:`feature_info` (0: stem, i: stage i), in that order.

        Stops after the deepest one asked for. The last stage's map is the one
        :meth:`forward_features` returns (after the final BN-ReLU of pre-activation networks).
        """
        x = self.relu(self.bn1(self.conv1(x)))  # (N, stem_width, H/r, W/r)
        maps = {0: x}
        x = self.maxpool(x)
        for stage in range(1, max(indices) + 1):
            x = getattr(self, f"layer{stage}")(x)
            maps[stage] = self.final_norm(x) if stage == self.num_stages else x
        return [maps[i] for i in indices]

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head for ``num_classes`` classes; 0 for none (pooled features out)."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be a whole number >= 0 (0: no classifier), got {num_classes!r}")
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def prune_intermediate_layers(self, indices: Sequence[int]) -> None:
        """Drop what the feature maps at ``indices`` do not need: later stages, the final norm, the head.

        A backbone then holds no unused parameter (DDP requires that every parameter gets a gradient).
        """
        last = max(indices)
        for stage in range(last + 1, self.num_stages + 1):
            self.add_module(f"layer{stage}", nn.Sequential())  # empty: blocks() still iterates it
        if last < self.num_stages:
            self.final_norm = nn.Identity()
        self.block_shapes = self.block_shapes[: sum(len(getattr(self, f"layer{s}")) for s in range(1, last + 1))]
        self.reset_classifier(0)


def _feature_info(model: ResNet, stem_width: int) -> list[dict[str, Any]]:
    """timm's ``feature_info`` of ``model``, its reductions read from the strides it was built with."""
    reduction = _stride(model.conv1) * _stride(model.bn1) * _stride(model.relu)
    info = [{"num_chs": stem_width, "reduction": reduction, "module": "relu"}]
    reduction *= _stride(model.maxpool)
    shapes = iter(model.block_shapes)
    for stage in range(1, model.num_stages + 1):
        for _ in getattr(model, f"layer{stage}"):
            _, channels, stride = next(shapes)
            reduction *= stride
        info.append({"num_chs": channels, "reduction": reduction, "module": f"layer{stage}"})
    return info


def _stride(module: nn.Module) -> int:
    """How much ``module`` shrinks a map's side: the product of its layers' strides (convolutions, pools)."""
    total = 1
    for layer in module.modules():
        stride = getattr(layer, "stride", None)
        if isinstance(stride, int | tuple) and not isinstance(stride, bool):
            total *= stride[0] if isinstance(stride, tuple) else stride
    return total


def _per_stage(
    block: type[nn.Module] | Sequence[type[nn.Module]], name: str | Sequence[str] | None, stages: int
) -> tuple[list[type[nn.Module]], list[str]]:
    """One block class and one name per stage, from one class (every stage) or a list of them."""
    blocks = [block] * stages if isinstance(block, type) else list(block)
    if len(blocks) != stages:
        raise ValueError(f"need a block for each of the {stages} stages, got {len(blocks)} blocks")
    if name is None:
        names = [f"{b.__module__}.{b.__qualname__}" for b in blocks]
    else:
        names = [name] * stages if isinstance(name, str) else list(name)
    if len(names) != stages:
        raise ValueError(f"need a block name for each of the {stages} stages, got {list(names)}")
    return blocks, names


def _with_options(block: type[nn.Module], name: str, **options: bool) -> Callable[..., nn.Module]:
    """``block`` given the options that are set; one it refuses is a ValueError naming the block and the option."""
    given = {option: True for option, on in options.items() if on}

    def make_block(*args: Any, **kwargs: Any) -> nn.Module:
        try:
            return block(*args, **kwargs, **given)
        except TypeError as exc:
            refused = [option for option in given if f"'{option}'" in str(exc)]
            if not refused:
                raise
            raise ValueError(
                f"block {name!r} does not take {refused[0]}=True; leave {refused[0]} off for it, or subclass "
                "resnet_lightning.models.ResidualBlock (docs/writing-a-plugin.md)"
            ) from exc

    return make_block


def _check_arguments(
    layers: Sequence[int],
    widths: Sequence[int],
    stem: str,
    num_classes: int,
    in_channels: int,
    drop_path_rate: float,
) -> None:
    if stem not in STEM_TYPES:
        raise ValueError(f"unknown stem {stem!r}; expected one of {list(STEM_TYPES)}")
    if not layers or any(int(n) < 1 for n in layers):
        raise ValueError(f"layers must be one or more positive block counts, got {list(layers)}")
    if len(widths) < len(layers):
        raise ValueError(f"need a width for each of the {len(layers)} stages, got widths={list(widths)}")
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")

