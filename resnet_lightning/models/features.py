"""Backbones for other tasks: a network's feature maps at chosen depths, as timm's ``features_only``.

``create_model("resnet50", features_only=True, out_indices=(1, 2, 3, 4))`` returns a
:class:`FeatureExtractor`: images in, the list of stage outputs out, with their channels
and reductions in ``feature_info`` (a detector's FPN or a segmentation decoder reads
them from there). A network offers feature maps by two members, which
:class:`~resnet_lightning.models.ResNet` has, and so every architecture built on it:

* ``feature_info``: one dict per map, ``{"num_chs": C, "reduction": R, "module": name}``;
* ``forward_intermediates(x, indices) -> list[Tensor]``: those maps, in that order;

and optionally ``prune_intermediate_layers(indices)``, which drops the layers the maps do
not need (later stages, the classifier), so that DDP finds no parameter without a gradient.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UserError


class FeaturesError(UserError, ValueError):
    """``features_only`` cannot be given: an index out of range, or a network without feature maps."""


class FeatureInfo(list):
    """``feature_info`` of the maps a :class:`FeatureExtractor` returns, with timm's accessors."""

    def channels(self) -> list[int]:
        """Channels of each map."""
        return [int(info["num_chs"]) for info in self]

    def reduction(self) -> list[int]:
        """Input side / map side, for each map."""
        return [int(info["reduction"]) for info in self]

    def module_name(self) -> list[str]:
        """The module whose output each map is."""
        return [str(info["module"]) for info in self]


def resolve_out_indices(available: Sequence[dict[str, Any]], out_indices: Iterable[int] | None, arch: str) -> list[int]:
    """``out_indices`` as non-negative indices into ``available`` (negative ones count from the end); all when None."""
    count = len(available)
    if out_indices is None:
        return list(range(count))
    indices = list(out_indices) if not isinstance(out_indices, int) else [out_indices]
    names = ", ".join(f"{i}: {info['module']}" for i, info in enumerate(available))
    bad = [i for i in indices if not isinstance(i, int) or isinstance(i, bool) or not -count <= i < count]
    if bad or not indices:
        raise FeaturesError(
            f"out_indices {tuple(indices)} out of range for {arch}: it has {count} feature maps, 0..{count - 1} ({names}); "
            f"pass indices among them, e.g. out_indices={tuple(range(1, count))}"
        )
    return [i % count for i in indices]


class FeatureExtractor(nn.Module):
    """A network cut down to a backbone: ``forward(x)`` returns its feature maps at ``out_indices``.

    Args:
        model: A network offering feature maps (see the module's docstring).
        out_indices: Indices into the network's ``feature_info`` (0: the stem, i: stage i
            for a :class:`~resnet_lightning.models.ResNet`); None for all.
        arch: The architecture's name, for messages.

    Attributes:
        feature_info: A :class:`FeatureInfo` of the maps returned, in order.
    """

    def __init__(self, model: nn.Module, out_indices: Iterable[int] | None = None, arch: str | None = None) -> None:
        super().__init__()
        arch = arch or type(model).__name__
        available = getattr(model, "feature_info", None)
        if not isinstance(available, Sequence) or not callable(getattr(model, "forward_intermediates", None)):
            raise FeaturesError(
                f"architecture {arch!r} ({type(model).__name__}) offers no feature maps: features_only needs its network "
                "to have feature_info and forward_intermediates(x, indices), as resnet_lightning.models.ResNet has; "
                "see 'Backbones: features_only' in docs/writing-a-plugin.md"
            )
        self.out_indices = resolve_out_indices(available, out_indices, arch)
        self.feature_info = FeatureInfo(dict(available[i]) for i in self.out_indices)
        if callable(getattr(model, "prune_intermediate_layers", None)):
            model.prune_intermediate_layers(self.out_indices)
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices)  # [(N, C_i, H / r_i, W / r_i), ...]


__all__ = ["FeatureExtractor", "FeatureInfo", "FeaturesError", "resolve_out_indices"]
