"""The ResNeXt bottleneck: aggregated residual transformations as one grouped convolution."""

from __future__ import annotations

from typing import Any

from resnet_lightning.models import Bottleneck


class ResNeXtBottleneck(Bottleneck):
    """Grouped 1x1-3x3-1x1 bottleneck (Xie et al. 2017, "Aggregated Residual Transformations").

    The block sums ``cardinality`` parallel paths of the same shape. The paper
    shows the three forms of Fig. 3 are equivalent and uses (c): one 1x1
    convolution, one 3x3 convolution with ``groups=cardinality``, one 1x1 back.
    "32x4d" means 32 paths of 4 channels each in the first stage; the grouped
    width is ``out_channels / 4 * base_width / 64 * cardinality`` (128 for
    32x4d at stage width 64), which keeps the FLOPs of ResNet-50.

    Layer names are torchvision's (``conv1``..``bn3``, ``downsample``), so
    torchvision's ResNeXt state dicts load unchanged.
    Its residual structure (``branch``, ``shortcut``, ``merge``) is the core
    bottleneck's: only the constructor differs.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (stage width x 4).
        stride: Stride of the grouped 3x3 convolution.
        cardinality: Number of paths C (groups of the 3x3 convolution).
        base_width: Width d of each path in the first stage.
        **kwargs: ``norm_layer``, ``drop_path_rate``, ``shortcut`` (see
            :class:`resnet_lightning.models.Bottleneck`).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, *, cardinality: int = 32, base_width: int = 4, **kwargs: Any
    ) -> None:
        if "groups" in kwargs:
            raise TypeError(f"resnext_bottleneck takes cardinality=..., not groups={kwargs['groups']!r}; pass cardinality")
        width = int(out_channels // self.expansion * base_width / 64) * cardinality
        if width < cardinality:
            raise ValueError(
                f"resnext_bottleneck with out_channels={out_channels}, base_width={base_width} leaves less than one "
                f"channel per path (cardinality={cardinality}); use out_channels >= {4 * -(-64 // base_width)} "
                f"or a larger base_width"
            )
        super().__init__(in_channels, out_channels, stride, groups=cardinality, base_width=base_width, **kwargs)
