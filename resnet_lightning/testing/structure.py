"""The residual structure a block states: ``forward == merge(branch, shortcut)``, drop-path, zero-init."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..models.residual import STRUCTURE_METHODS, ResidualStructureWarning
from .common import PluginContractError, build_block, call_repr

def check_structure(cls: type, name: str, configs: list[tuple[int, int, int]], block_kwargs: dict) -> bool:
    """``forward(x) == merge(branch(x), shortcut(x))`` in eval mode, for every shortcut option.

    Returns False (with a warning naming the block) when the block does not define
    the three methods: it keeps the contract, but the analyses will skip it.
    """
    missing = [m for m in STRUCTURE_METHODS if not callable(getattr(cls, m, None))]
    if len(missing) == len(STRUCTURE_METHODS):
        warnings.warn(
            f"block {name!r} ({cls.__module__}.{cls.__qualname__}) does not define branch(x), shortcut(x) and "
            f"merge(branch_out, shortcut_out): it trains, but the residual ratio, lesion study, weighted depth, "
            f"gradient flow and zero-init checks will skip it; subclass resnet_lightning.models.ResidualBlock "
            f"or add the methods (docs/writing-a-plugin.md)",
            ResidualStructureWarning,
            stacklevel=3,
        )
        return False
    if missing:
        raise PluginContractError(
            f"block {name!r} defines {', '.join(m for m in STRUCTURE_METHODS if m not in missing)} but not "
            f"{', '.join(missing)}; the residual structure needs all three of branch(x), shortcut(x) and "
            f"merge(branch_out, shortcut_out) (or none)"
        )
    for in_channels, out_channels, stride in configs:
        for shortcut in ("A", "B", "C"):
            options = dict(norm_layer=nn.BatchNorm2d, drop_path_rate=0.1, shortcut=shortcut, **block_kwargs)
            where = call_repr(cls, in_channels, out_channels, stride, options)
            block = build_block(cls, name, in_channels, out_channels, stride, options).eval()
            x = torch.randn(2, in_channels, 7, 7)
            try:
                with torch.no_grad():
                    out = block(x)
                    shortcut_out = block.shortcut(x)
                    merged = block.merge(block.branch(x), shortcut_out)
            except Exception as exc:
                raise PluginContractError(
                    f"block {name!r} ({where}): merge(branch(x), shortcut(x)) raised {type(exc).__name__} in "
                    f"eval mode: {exc}"
                ) from exc
            if not isinstance(merged, torch.Tensor) or merged.shape != out.shape or not torch.allclose(
                merged, out, rtol=1e-5, atol=1e-5
            ):
                got = (
                    f"largest difference {(merged - out).abs().max().item():.3g}"
                    if isinstance(merged, torch.Tensor) and merged.shape == out.shape
                    else f"{list(merged.shape) if isinstance(merged, torch.Tensor) else type(merged).__name__} "
                    f"instead of {list(out.shape)}"
                )
                raise PluginContractError(
                    f"block {name!r} ({where}): forward(x) differs from merge(branch(x), shortcut(x)) in eval "
                    f"mode ({got}); the analyses compute the block through these methods, so they must "
                    f"compute what forward computes"
                )
    return True


def check_drop_path(cls: type, name: str, in_channels: int, out_channels: int, block_kwargs: dict) -> None:
    """Warn when a residual block ignores ``drop_path_rate``: stochastic depth would be off in it.

    At ``drop_path_rate=0.9`` in training, a block that applies it outputs
    ``merge(0, shortcut(x))`` for about 90% of the samples (Huang et al. 2016); one
    that ignores it for none of 16 (a chance of 1e-16 otherwise).
    """
    options = dict(drop_path_rate=0.9, **block_kwargs)
    block = build_block(cls, name, in_channels, out_channels, 2, options).train()
    x = torch.randn(16, in_channels, 7, 7)
    with torch.no_grad():
        out = block(x)
        shortcut = block.shortcut(x)
        if shortcut is None:
            return  # no skip path, nothing to drop (a plain block)
        dropped = block.merge(torch.zeros_like(shortcut), shortcut)
    if out.shape == dropped.shape and not torch.isclose(out, dropped, atol=1e-5).flatten(1).all(dim=1).any():
        warnings.warn(
            f"block {name!r} ignores drop_path_rate: at drop_path_rate=0.9 in training no sample's residual branch "
            f"was dropped, so --model.drop_path_rate (stochastic depth, Huang et al. 2016) changes nothing in it; "
            f"subclass resnet_lightning.models.ResidualBlock (forward drops the branch) or apply "
            f"resnet_lightning.models.DropPath(drop_path_rate) to branch(x) in forward",
            UserWarning,
            stacklevel=3,
        )


def check_zero_init_last(cls: type, name: str, in_channels: int, out_channels: int, stride: int, block_kwargs: dict) -> None:
    """``zero_init_last()`` must make ``branch(x)`` zero (Goyal et al. 2017), so the
    block starts as ``merge(0, shortcut(x))``: what stochastic depth computes when
    it drops the branch (Huang et al. 2016), and what the lesion study calls deleted.
    """
    options = dict(shortcut="B", drop_path_rate=0.0, **block_kwargs)
    where = call_repr(cls, in_channels, out_channels, stride, options)
    block = build_block(cls, name, in_channels, out_channels, stride, options).train()
    x = torch.randn(2, in_channels, 7, 7)
    with torch.no_grad():
        shortcut_before = block.shortcut(x)
        try:
            block.zero_init_last()
        except Exception as exc:
            raise PluginContractError(f"block {name!r} ({where}): zero_init_last() raised {type(exc).__name__}: {exc}") from exc
        branch, shortcut_after = block.branch(x), block.shortcut(x)
    if shortcut_before is not None and not torch.allclose(shortcut_before, shortcut_after, atol=1e-6):
        raise PluginContractError(
            f"block {name!r} ({where}): zero_init_last() changed shortcut(x); it must zero the last layer of "
            f"the residual branch (Goyal et al. 2017) and leave the shortcut path alone"
        )
    if not torch.allclose(branch, torch.zeros_like(branch), atol=1e-6):
        raise PluginContractError(
            f"block {name!r} ({where}): after zero_init_last() branch(x) is not zero (largest value "
            f"{branch.abs().max().item():.3g}); zero_init_last must zero the last layer of the residual "
            f"branch (Goyal et al. 2017), so the block starts as merge(0, shortcut(x))"
        )

