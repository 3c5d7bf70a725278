"""The residual structure of a block: ``branch``, ``shortcut`` and ``merge``.

A residual block computes ``merge(branch(x), shortcut(x))``: ``branch`` is the
residual function F (He et al. 2015), ``shortcut`` what the skip path carries
(the input, a projection of it, or None for a block without a skip path) and
``merge`` how the two meet (``F(x) + x``, ``relu(F(x) + x)``, ...). A block that
exposes these three methods tells every analysis what it is made of, whatever
its attributes are called:

- the residual ratio ``||branch(x)|| / ||shortcut(x)||`` (He et al. 2015, Sec. 4.2);
- the lesion study: deleting a block is ``merge(0, shortcut(x))`` (Veit et al. 2016);
- the weighted depth: layers the branch uses, not those only the shortcut uses;
- gradient flow and the zero-init check (``branch(x) == 0`` after ``zero_init_last()``).

:class:`ResidualBlock` implements ``forward`` as ``merge(drop_path(branch(x)),
shortcut(x))``, so a subclass that defines only ``branch`` gets the identity or
projection shortcut, the addition, stochastic depth (Huang et al. 2016) and
zero-init (Goyal et al. 2017) for free. A block that does not subclass it may
define the three methods itself (:class:`ResidualStructure`, duck-typed). A
block with none of them still trains everywhere; the analyses skip it with a
warning naming it (:func:`blocks_without_structure`).

Nothing here imports Lightning or torchvision.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from .shortcuts import make_shortcut

__all__ = [
    "STRUCTURE_METHODS",
    "block_inputs",
    "blocks_without_structure",
    "DropPath",
    "ResidualBlock",
    "ResidualStructure",
    "ResidualStructureWarning",
    "find_network",
    "has_structure",
    "residual_blocks",
    "structured_blocks",
]

STRUCTURE_METHODS = ("branch", "shortcut", "merge")


class ResidualStructureWarning(UserWarning):
    """An analysis skipped blocks that do not expose ``branch``/``shortcut``/``merge``."""


@runtime_checkable
class ResidualStructure(Protocol):
    """What a block exposes for the analyses (duck typing: subclassing is optional).

    ``forward(x)`` must equal ``merge(branch(x), shortcut(x))`` in eval mode.
    ``shortcut(x)`` returns None for a block without a skip path (a plain block);
    ``merge`` then receives None as its second argument.
    """

    def branch(self, x: torch.Tensor) -> torch.Tensor: ...

    def shortcut(self, x: torch.Tensor) -> torch.Tensor | None: ...

    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor: ...


class DropPath(nn.Module):
    """Stochastic depth on the residual branch, per sample (Huang et al. 2016).

    In training each sample's branch output is zeroed with probability ``p`` and
    the survivors are scaled by ``1 / (1 - p)``, so eval mode (the identity)
    sees the same expectation. Computes what ``torchvision.ops.StochasticDepth(p,
    "row")`` computes; kept here so that building a block imports no torchvision.
    Holds no parameters or buffers: state dicts are unchanged.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop path probability must be in [0, 1], got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ResidualBlock(nn.Module):
    """Base class of a residual block: ``forward(x) = merge(drop_path(branch(x)), shortcut(x))``.

    ``__init__`` builds the skeleton every block shares, once: ``drop_path``, then the
    branch's layers (:meth:`build_branch`, which a subclass defines), then ``downsample``,
    so the modules are registered in torchvision's order (``conv1``, ``bn1``, ...,
    ``downsample``): its state dicts, and optimizer states (kept by parameter
    position), line up. A subclass may instead build its layers in its own
    ``__init__`` after calling this one. Either way it defines :meth:`branch`. The defaults:

    - :meth:`shortcut`: ``self.downsample(x)``, or ``x`` when ``downsample`` is
      None. ``__init__`` sets ``downsample`` with :func:`make_shortcut` (options
      A, B, C of He et al. 2015) unless ``shortcut=None``; a subclass may replace it.
      The projection has a norm unless the class sets ``shortcut_norm = False``
      (pre-activation blocks project the already-normalised input, He et al. 2016).
    - :meth:`merge`: ``branch_out + shortcut_out``, nothing after the addition
      (the clean identity path of He et al. 2016, "Identity Mappings").
      Post-activation blocks override it with ``relu(branch_out + shortcut_out)``.
    - ``drop_path``: :class:`DropPath` with ``drop_path_rate`` (Huang et al. 2016).
    - :meth:`zero_init_last`: zeroes the weight of the last layer with weights
      that :meth:`branch` runs, so the block starts as its shortcut (Goyal et al. 2017).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: The block's stride (the shortcut subsamples by it).
        drop_path_rate: Stochastic-depth drop probability of the branch.
        shortcut: ``"A"``, ``"B"`` or ``"C"`` for ``downsample``; None builds none
            (the subclass sets ``self.downsample`` itself).
        norm_layer: Norm constructor of the branch and of a projection shortcut.
        avg_down: A subsampling shortcut averages ``stride`` x ``stride`` first and projects
            at stride 1 (ResNet-D, He et al. 2019; timm's ``avg_down``).
        blur_pool: Anti-aliased down-sampling (Zhang 2019): ``self.blur_pool`` tells
            :meth:`build_branch` to put its stride in a :func:`~.antialias.downsampler`
            after the activation (the shortcut is left as it is, as in timm).
        **kwargs: The block's own options, passed to :meth:`build_branch`; options
            meant for other blocks are ignored there (the block contract).
    """

    expansion: int = 1
    shortcut_norm: bool = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        drop_path_rate: float = 0.0,
        shortcut: str | None = "B",
        norm_layer: Any = nn.BatchNorm2d,
        avg_down: bool = False,
        blur_pool: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.blur_pool = blur_pool
        self.drop_path = DropPath(drop_path_rate)
        self.build_branch(in_channels, out_channels, stride, norm_layer=norm_layer, **kwargs)
        if shortcut is not None:
            projection_norm = norm_layer if self.shortcut_norm else None
            self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride, projection_norm, avg_down)

    def build_branch(self, in_channels: int, out_channels: int, stride: int, *, norm_layer: Any, **kwargs: Any) -> None:
        """Build the layers :meth:`branch` uses (called by ``__init__``); by default none.

        Takes the block's own options by keyword and ignores, through ``**kwargs``,
        those meant for other blocks.
        """

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual function F(x); subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} subclasses ResidualBlock but defines no branch(x)")

    def shortcut(self, x: torch.Tensor) -> torch.Tensor | None:
        """What the skip path carries: ``downsample(x)``, or ``x`` itself."""
        downsample = getattr(self, "downsample", None)
        return x if downsample is None else downsample(x)

    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor:
        """How branch and shortcut meet: their sum."""
        return branch_out if shortcut_out is None else branch_out + shortcut_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(self.drop_path(self.branch(x)), self.shortcut(x))

    def zero_init_last(self) -> None:
        """Zero the last weighted layer of the branch, so the block starts as its shortcut.

        Goyal et al. 2017 ("Accurate, Large Minibatch SGD") zero the scale of the
        branch's last BN; where the branch ends in a convolution (pre-activation
        blocks) its weight is zeroed instead. Found by running :meth:`branch` once
        on a small input; override it where that is not the right layer.
        """
        last = _last_weighted_layer(self)
        if last is None:
            raise RuntimeError(f"{type(self).__name__}.branch uses no layer with weights; override zero_init_last")
        nn.init.zeros_(last.weight)
        if isinstance(last, (nn.Conv2d, nn.Linear)) and last.bias is not None:
            nn.init.zeros_(last.bias)


@torch.no_grad()
def _last_weighted_layer(block: nn.Module) -> nn.Module | None:
    in_channels = getattr(block, "in_channels", None)
    if in_channels is None:
        return None
    called: list[nn.Module] = []
    handles = [
        m.register_forward_hook(lambda module, inputs, output: called.append(module))
        for m in block.modules()
        if m is not block and isinstance(getattr(m, "weight", None), torch.Tensor) and not list(m.children())
    ]
    was_training = block.training
    block.eval()
    try:
        block.branch(torch.zeros(1, in_channels, 8, 8))
    finally:
        block.train(was_training)
        for handle in handles:
            handle.remove()
    return called[-1] if called else None


def has_structure(block: nn.Module) -> bool:
    """Whether the block exposes callable ``branch``, ``shortcut`` and ``merge``."""
    return all(callable(getattr(block, name, None)) for name in STRUCTURE_METHODS)


def find_network(module: nn.Module) -> nn.Module | None:
    """The first submodule (``module`` included) with a ``blocks()`` method, or None.

    A LightningModule wrapping a ResNet (``ResNetClassifier.model``) resolves to the ResNet.
    """
    for m in module.modules():
        if callable(getattr(m, "blocks", None)):
            return m
    return None


def residual_blocks(module: nn.Module) -> list[nn.Module]:
    """The network's blocks from input to output; empty when it has no ``blocks()``."""
    network = find_network(module)
    return list(network.blocks()) if network is not None else []


def blocks_without_structure(blocks: Sequence[nn.Module]) -> list[int]:
    """Indices of the blocks that lack one of ``branch``/``shortcut``/``merge``."""
    return [i for i, b in enumerate(blocks) if not has_structure(b)]


def structured_blocks(module: nn.Module, analysis: str, warn: bool = True) -> list[tuple[int, nn.Module]]:
    """``(depth index, block)`` of the blocks exposing the structure, with one warning about the rest.

    Args:
        module: The network (or a module wrapping it).
        analysis: The analysis' name, for the warning ("residual ratio", "lesion study").
        warn: Warn about skipped blocks (callbacks that measure every N steps warn once).
    """
    blocks = residual_blocks(module)
    if not blocks:
        if not warn:
            return []
        warnings.warn(
            f"{analysis}: {type(module).__name__} has no blocks() method, so it has no blocks to analyse; "
            f"build it on resnet_lightning.models.ResNet or give it a blocks() method listing its residual blocks",
            ResidualStructureWarning,
            stacklevel=3,
        )
        return []
    missing = blocks_without_structure(blocks)
    if missing and warn:
        names = sorted({f"{type(blocks[i]).__module__}.{type(blocks[i]).__qualname__}" for i in missing})
        warnings.warn(
            f"{analysis}: skipping {len(missing)} of {len(blocks)} blocks ({', '.join(names)}, block indices "
            f"{_ranges(missing)}): they do not define branch(x), shortcut(x) and merge(branch_out, shortcut_out); "
            f"subclass resnet_lightning.models.ResidualBlock or add the methods (docs/writing-a-plugin.md)",
            ResidualStructureWarning,
            stacklevel=3,
        )
    skipped = set(missing)
    return [(i, b) for i, b in enumerate(blocks) if i not in skipped]


@torch.no_grad()
def block_inputs(network: nn.Module, blocks: Sequence[nn.Module], images: torch.Tensor) -> list[torch.Tensor | None]:
    """Each block's input when ``network`` (eval mode, no gradients) runs on ``images``.

    ``network.forward`` is called, not ``network(...)``: with ``nn.Module.compile()``
    only the top-level call is compiled, so the blocks (and these hooks) run eagerly.
    """
    captured: list[torch.Tensor | None] = [None] * len(blocks)

    def keep(index: int):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            captured[index] = inputs[0].detach().clone()  # before anything could modify it in place

        return hook

    handles = [b.register_forward_pre_hook(keep(i)) for i, b in enumerate(blocks)]
    was_training = network.training
    network.eval()
    try:
        network.forward(images)
    finally:
        network.train(was_training)
        for handle in handles:
            handle.remove()
    return captured


def _ranges(indices: Sequence[int]) -> str:
    parts, start = [], None
    for k, i in enumerate(indices):
        if start is None:
            start = i
        if k + 1 == len(indices) or indices[k + 1] != i + 1:
            parts.append(str(start) if start == i else f"{start}-{i}")
            start = None
    return ", ".join(parts)
