"""``check_block``: a block alone (shapes, gradients, determinism, options) and inside every built-in family."""

from __future__ import annotations

import contextlib
import inspect
import math
from typing import Any

import torch
from torch import nn

from ..models import BlockContractError
from ..models.builders import resolve_block
from ..registry import get_architecture
from .architectures import check_model
from .common import (
    FOREIGN_OPTION, FRAMEWORK_BLOCK_KWARGS, PluginContractError, build_block, call_repr, check_gradients, isolated, kwargs_repr,
    run_in_mode,
)
from .shapes import check_network_blocks
from .structure import check_drop_path, check_structure, check_zero_init_last

# One small instance of each built-in architecture family, enough to put a block
# through every stem, shortcut option and stage layout the core has. Values:
# (architecture options, input channels, input size). cifar_plain is
# cifar_resnet with the plain block, so a given block adds nothing there.
_FAMILIES: dict[str, tuple[dict[str, Any], int, int]] = {
    # ImageNet stem (7x7/2 conv + max-pool), four stages, projection shortcuts (B),
    # every residual branch zero-initialised (Goyal et al. 2017).
    "resnet18": (dict(widths=(16, 32, 64, 128), zero_init_residual=True), 3, 17),
    # CIFAR stem, three stages, parameter-free shortcuts (A), stochastic depth on.
    "cifar_resnet": (dict(drop_path_rate=0.1), 3, 9),
    # cifar_resnet with projection shortcuts, as the pre-activation paper builds it.
    "preact_resnet": ({}, 3, 9),
    # Pointwise stem, one stage at constant width; passes kernel_size and bias to blocks.
    "mnist_resnet": (dict(num_blocks=2, channels=16), 1, 8),
}


def check_block(block: str | type[nn.Module], /, **block_kwargs: Any) -> None:
    """Check that a block keeps the block contract, alone and in every built-in architecture.

    Checks that ``expansion`` (if set) is a positive int and ``__init__`` takes
    ``**kwargs``; that ``block(in, out, stride, norm_layer=..., drop_path_rate=...,
    shortcut=...)`` builds for shortcuts A, B and C, with none of them, and with
    an option meant for another block; that it maps ``(N, in, H, W)`` to
    ``(N, out, ceil(H/stride), ceil(W/stride))`` for strides 1 and 2, odd and
    even sizes and changing channel counts, in train and eval mode, without
    modifying its input; that every parameter gets a finite gradient (in the
    architectures below, in eval mode, as :func:`check_architecture` checks); that eval
    mode is deterministic and changes no buffer; that ``forward(x)`` equals
    ``merge(branch(x), shortcut(x))`` in eval mode (the residual structure the
    analyses read; a block without ``branch``/``shortcut``/``merge`` gets a
    :class:`~resnet_lightning.models.ResidualStructureWarning` instead, as it will
    from every analysis); that ``zero_init_last()`` (if defined) makes
    ``branch(x)`` zero; and that the block trains inside
    each built-in architecture family (``resnet18``, ``cifar_resnet``,
    ``preact_resnet``, ``mnist_resnet``, all small).

    Args:
        block: A registry name (``"se_bottleneck"``) or the block class.
        **block_kwargs: Options for the block's constructor (``reduction=8``).

    Raises:
        PluginContractError: the block breaks the contract; the message says where.
    """
    cls, name = _resolve(block)
    expansion = _check_class_attributes(cls, name)
    with isolated():
        # Widths as a network's stages have them: 16 out of the stem, then 16 and
        # 32 per stage times the expansion (16 keeps grouped bottlenecks, whose
        # group width is width * base_width / 64, at least one channel wide).
        wide, wider = 16 * expansion, 32 * expansion
        configs = list(dict.fromkeys([(16, wide, 1), (wide, wide, 1), (wide, wider, 1), (wide, wider, 2)]))
        for in_channels, out_channels, stride in configs:
            for shortcut in ("A", "B", "C"):
                options = dict(norm_layer=nn.BatchNorm2d, drop_path_rate=0.0, shortcut=shortcut, **block_kwargs)
                _check_instance(cls, name, in_channels, out_channels, stride, options)
        build_block(cls, name, wide, wide, 1, dict(block_kwargs))  # the framework's options are optional
        build_block(cls, name, wide, wider, 2, dict(block_kwargs, **FOREIGN_OPTION))
        stochastic = build_block(cls, name, wide, wider, 2, dict(drop_path_rate=0.5, **block_kwargs))
        _run(stochastic, name, torch.randn(2, wide, 7, 7), (2, wider, 4, 4), "train", "drop_path_rate=0.5")
        structured = check_structure(cls, name, configs, block_kwargs)
        if structured:
            check_drop_path(cls, name, wide, wider, block_kwargs)
        if structured and getattr(cls, "zero_init_last", None) is not None:
            for in_channels, out_channels, stride in ((wide, wide, 1), (wide, wider, 2)):
                check_zero_init_last(cls, name, in_channels, out_channels, stride, block_kwargs)
        for arch in _FAMILIES:
            _check_in_architecture(arch, cls, name, block_kwargs)


def _resolve(block: str | type[nn.Module]) -> tuple[type[nn.Module], str]:
    try:
        cls, name = resolve_block(block, default="")
    except TypeError as exc:
        raise PluginContractError(str(exc)) from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise PluginContractError(
            f"block {name!r} is {cls!r}, not a torch.nn.Module subclass; point the entry point at the class"
        )
    return cls, name


def _check_class_attributes(cls: type, name: str) -> int:
    expansion = getattr(cls, "expansion", 1)
    if not isinstance(expansion, int) or isinstance(expansion, bool) or expansion < 1:
        raise PluginContractError(
            f"block {name!r} has expansion={expansion!r}; expected a positive int, the ratio of its "
            f"output channels to the stage width (1 for two-convolution blocks, 4 for bottlenecks)"
        )
    preactivation = getattr(cls, "preactivation", False)
    if not isinstance(preactivation, bool):
        raise PluginContractError(
            f"block {name!r} has preactivation={preactivation!r}; expected True (the block ends "
            f"without norm and activation, so the network adds them before pooling) or False"
        )
    zero_init_last = getattr(cls, "zero_init_last", None)
    if zero_init_last is not None and not callable(zero_init_last):
        raise PluginContractError(
            f"block {name!r} has zero_init_last={zero_init_last!r}; expected a method, or None "
            f"(or no attribute) when the block has no residual branch to zero"
        )
    with contextlib.suppress(TypeError, ValueError):  # no signature to read: the builds below speak
        signature = inspect.signature(cls)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
            raise PluginContractError(
                f"block {name!r} takes no **kwargs (its signature is {cls.__name__}{signature}); "
                f"the framework passes {', '.join(FRAMEWORK_BLOCK_KWARGS)} to every block and architectures "
                f"pass their own options (mnist_resnet passes kernel_size and bias): accept **kwargs and "
                f"ignore what the block does not use"
            )
    return expansion


def _check_instance(cls: type, name: str, in_channels: int, out_channels: int, stride: int, options: dict) -> None:
    block = build_block(cls, name, in_channels, out_channels, stride, options)
    where = call_repr(cls, in_channels, out_channels, stride, options)
    for size in (7, 8):  # odd and even: ceil(H / stride), not floor
        expected = (2, out_channels, math.ceil(size / stride), math.ceil(size / stride))
        x = torch.randn(2, in_channels, size, size)
        out = _run(block, name, x, expected, "train", where)
        check_gradients(block, f"block {name!r} ({where})", out)
        state = {k: v.clone() for k, v in block.state_dict().items()}
        first = _run(block, name, x, expected, "eval", where)
        second = _run(block, name, x, expected, "eval", where)
        if not torch.equal(first, second):
            raise PluginContractError(
                f"block {name!r} ({where}) is not deterministic in eval mode: two forward passes on one "
                f"input differ; dropout and stochastic depth must follow self.training"
            )
        changed = [k for k, v in block.state_dict().items() if not torch.equal(v, state[k])]
        if changed:
            raise PluginContractError(f"block {name!r} ({where}): a forward pass in eval mode changed {changed}")


def _run(block: nn.Module, name: str, x: torch.Tensor, expected: tuple[int, ...], mode: str, where: str) -> torch.Tensor:
    shape, original = list(x.shape), x.clone()
    out = run_in_mode(block, x, mode, f"block {name!r} ({where})")
    if not torch.equal(x, original):
        raise PluginContractError(
            f"block {name!r} ({where}) modified its input in place in {mode} mode; the shortcut needs it "
            f"unchanged (apply the first activation out of place: nn.ReLU(), not nn.ReLU(inplace=True))"
        )
    got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != list(expected):
        raise PluginContractError(
            f"block {name!r} ({where}) maps {shape} to {got} in {mode} mode; expected {list(expected)}, "
            f"that is (N, out_channels, ceil(H/stride), ceil(W/stride))"
        )
    if not torch.isfinite(out).all():
        raise PluginContractError(f"block {name!r} ({where}) returned non-finite values in {mode} mode")
    return out


def _check_in_architecture(arch: str, cls: type, name: str, block_kwargs: dict) -> None:
    options, in_channels, size = _FAMILIES[arch]
    options = dict(options)
    if arch in ("cifar_resnet", "preact_resnet"):
        layers_per_block = 3 if getattr(cls, "expansion", 1) > 1 else 2
        options["depth"] = 3 * layers_per_block * 2 + 2  # two blocks per stage
    what = f"block {name!r} inside architecture {arch!r} ({kwargs_repr(options)})"
    try:
        model = get_architecture(arch)(
            num_classes=3, in_channels=in_channels, block=cls, block_kwargs=dict(block_kwargs), **options
        )
    except Exception as exc:
        raise PluginContractError(f"{what} failed to build: {type(exc).__name__}: {exc}") from exc
    try:
        check_network_blocks(model)  # what create_model checks of every network it builds
    except BlockContractError as exc:
        raise PluginContractError(f"{what}: {exc}") from exc
    check_model(model, what, in_channels, size, num_classes=3)

