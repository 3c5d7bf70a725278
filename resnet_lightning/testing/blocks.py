"""Contract checks for plugin authors, to call from a plugin's own test suite.

::

    from resnet_lightning.testing import check_architecture, check_block

    def test_my_block_keeps_the_block_contract():
        check_block("my_block")              # a registry name or the class, plus block options

    def test_my_net_keeps_the_architecture_contract():
        check_architecture("my_net", depth=8)  # a registry name or the builder, plus its options

Every check builds small instances and runs tiny inputs on the CPU (seconds, not
minutes). A broken contract raises :class:`PluginContractError`, an
``AssertionError`` so pytest reports a failed test, naming the block or
architecture, the arguments it was built with, what was expected and what it did.
The caller's random state and thread count are left as they were.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .models import BlockContractError
from .models.residual import STRUCTURE_METHODS, ResidualStructureWarning, has_structure
from .models.builders import resolve_block
from .registry import get_architecture, get_block

__all__ = ["FRAMEWORK_BLOCK_KWARGS", "PluginContractError", "check_architecture", "check_block", "check_export"]

# Keyword arguments every architecture built on resnet_lightning.models.ResNet
# passes to every block; a block must accept them, even to ignore them.
FRAMEWORK_BLOCK_KWARGS = ("norm_layer", "drop_path_rate", "shortcut")

# An option meant for some other block: architectures pass their block options to
# whatever block they are given (mnist_resnet passes kernel_size and bias).
_FOREIGN_OPTION = {"option_for_another_block": True}

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


class PluginContractError(AssertionError):
    """A block or architecture breaks the plugin contract; the message says how."""


# --- blocks ----------------------------------------------------------------------


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
    with _isolated():
        # Widths as a network's stages have them: 16 out of the stem, then 16 and
        # 32 per stage times the expansion (16 keeps grouped bottlenecks, whose
        # group width is width * base_width / 64, at least one channel wide).
        wide, wider = 16 * expansion, 32 * expansion
        configs = list(dict.fromkeys([(16, wide, 1), (wide, wide, 1), (wide, wider, 1), (wide, wider, 2)]))
        for in_channels, out_channels, stride in configs:
            for shortcut in ("A", "B", "C"):
                options = dict(norm_layer=nn.BatchNorm2d, drop_path_rate=0.0, shortcut=shortcut, **block_kwargs)
                _check_instance(cls, name, in_channels, out_channels, stride, options)
        _build(cls, name, wide, wide, 1, dict(block_kwargs))  # the framework's options are optional
        _build(cls, name, wide, wider, 2, dict(block_kwargs, **_FOREIGN_OPTION))
        stochastic = _build(cls, name, wide, wider, 2, dict(drop_path_rate=0.5, **block_kwargs))
        _run(stochastic, name, torch.randn(2, wide, 7, 7), (2, wider, 4, 4), "train", "drop_path_rate=0.5")
        structured = _check_structure(cls, name, configs, block_kwargs)
        if structured:
            _check_drop_path(cls, name, wide, wider, block_kwargs)
        if structured and getattr(cls, "zero_init_last", None) is not None:
            for in_channels, out_channels, stride in ((wide, wide, 1), (wide, wider, 2)):
                _check_zero_init_last(cls, name, in_channels, out_channels, stride, block_kwargs)
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


def _build(cls: type, name: str, in_channels: int, out_channels: int, stride: int, options: dict) -> nn.Module:
    call = _call_repr(cls, in_channels, out_channels, stride, options)
    try:
        block = cls(in_channels, out_channels, stride, **options)
    except Exception as exc:
        hint = ""
        if isinstance(exc, TypeError) and any(k in str(exc) for k in (*FRAMEWORK_BLOCK_KWARGS, *_FOREIGN_OPTION)):
            hint = (
                f"; every block must accept {', '.join(FRAMEWORK_BLOCK_KWARGS)} and options meant for "
                f"other blocks through **kwargs (they may be ignored)"
            )
        raise PluginContractError(f"block {name!r} failed to build as {call}: {type(exc).__name__}: {exc}{hint}") from exc
    if not isinstance(block, nn.Module):
        raise PluginContractError(f"block {name!r}: {call} returned {type(block).__name__}, not an nn.Module")
    return block


def _check_instance(cls: type, name: str, in_channels: int, out_channels: int, stride: int, options: dict) -> None:
    block = _build(cls, name, in_channels, out_channels, stride, options)
    where = _call_repr(cls, in_channels, out_channels, stride, options)
    for size in (7, 8):  # odd and even: ceil(H / stride), not floor
        expected = (2, out_channels, math.ceil(size / stride), math.ceil(size / stride))
        x = torch.randn(2, in_channels, size, size)
        out = _run(block, name, x, expected, "train", where)
        _check_gradients(block, f"block {name!r} ({where})", out)
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
    block.train(mode == "train")
    shape, original = list(x.shape), x.clone()
    try:
        with torch.set_grad_enabled(mode == "train"):
            out = block(x)
    except Exception as exc:
        raise PluginContractError(
            f"block {name!r} ({where}) raised {type(exc).__name__} in {mode} mode on an input of "
            f"shape {shape}: {exc}"
        ) from exc
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


def _check_gradients(module: nn.Module, what: str, out: torch.Tensor, *, finite: bool = True, mode: str = "") -> None:
    """Every parameter receives a gradient of ``out`` (and, with ``finite``, a finite one)."""
    module.zero_grad(set_to_none=True)
    # A random projection, not out.sum(): a sum's gradient is blind to some bugs
    # (through a softmax over channels, say, it is zero for every input).
    (out * torch.randn_like(out)).sum().backward()
    for param_name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            raise PluginContractError(
                f"{what}: parameter {param_name!r} received no gradient; every parameter must take part "
                f"in forward (unused parameters also make DistributedDataParallel fail)"
            )
        if finite and not torch.isfinite(param.grad).all():
            raise PluginContractError(
                f"{what}: parameter {param_name!r} has a non-finite gradient{f' in {mode} mode' if mode else ''}"
            )


def _check_structure(cls: type, name: str, configs: list[tuple[int, int, int]], block_kwargs: dict) -> bool:
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
            where = _call_repr(cls, in_channels, out_channels, stride, options)
            block = _build(cls, name, in_channels, out_channels, stride, options).eval()
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


def _check_drop_path(cls: type, name: str, in_channels: int, out_channels: int, block_kwargs: dict) -> None:
    """Warn when a residual block ignores ``drop_path_rate``: stochastic depth would be off in it.

    At ``drop_path_rate=0.9`` in training, a block that applies it outputs
    ``merge(0, shortcut(x))`` for about 90% of the samples (Huang et al. 2016); one
    that ignores it for none of 16 (a chance of 1e-16 otherwise).
    """
    options = dict(drop_path_rate=0.9, **block_kwargs)
    block = _build(cls, name, in_channels, out_channels, 2, options).train()
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


def _check_zero_init_last(cls: type, name: str, in_channels: int, out_channels: int, stride: int, block_kwargs: dict) -> None:
    """``zero_init_last()`` must make ``branch(x)`` zero (Goyal et al. 2017), so the
    block starts as ``merge(0, shortcut(x))``: what stochastic depth computes when
    it drops the branch (Huang et al. 2016), and what the lesion study calls deleted.
    """
    options = dict(shortcut="B", drop_path_rate=0.0, **block_kwargs)
    where = _call_repr(cls, in_channels, out_channels, stride, options)
    block = _build(cls, name, in_channels, out_channels, stride, options).train()
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


def _check_in_architecture(arch: str, cls: type, name: str, block_kwargs: dict) -> None:
    options, in_channels, size = _FAMILIES[arch]
    options = dict(options)
    if arch in ("cifar_resnet", "preact_resnet"):
        layers_per_block = 3 if getattr(cls, "expansion", 1) > 1 else 2
        options["depth"] = 3 * layers_per_block * 2 + 2  # two blocks per stage
    what = f"block {name!r} inside architecture {arch!r} ({_kwargs_repr(options)})"
    try:
        model = get_architecture(arch)(
            num_classes=3, in_channels=in_channels, block=cls, block_kwargs=dict(block_kwargs), **options
        )
    except BlockContractError as exc:
        raise PluginContractError(f"{what}: {exc}") from exc
    except Exception as exc:
        raise PluginContractError(f"{what} failed to build: {type(exc).__name__}: {exc}") from exc
    _check_model(model, what, in_channels, size, num_classes=3)


# --- architectures ------------------------------------------------------------------


def check_architecture(arch: str | Callable[..., nn.Module], /, *, input_size: int = 15, **arch_kwargs: Any) -> None:
    """Check that an architecture keeps the architecture contract.

    Checks that ``arch(*, num_classes, in_channels, block=None, **kwargs)`` accepts
    those keywords and returns an ``nn.Module`` whose logits are
    ``(N, num_classes)`` for two class counts and input channel counts, in train
    and eval mode; that every parameter gets a gradient in train mode, and a
    finite one in eval mode (in train mode, an untrained network's gradient
    through batch statistics grows exponentially with depth: resnet101 and a
    1202-layer plain network overflow on their own); that eval mode is
    deterministic; that a second build loads the first one's state dict with
    ``strict=True`` and computes the same function (what reloading a checkpoint
    relies on); and, when ``block`` is given by name, that the block class
    builds the same network.

    Args:
        arch: A registry name (``"se_resnet50"``) or the builder itself.
        input_size: Height and width of the test images (odd by default, so each
            stride-2 stage has to round up).
        **arch_kwargs: Options for the builder (``depth=8``, ``block="se_basic"``).
            Keep the model small: the checks build it four times.

    Raises:
        PluginContractError: the architecture breaks the contract; the message says where.
    """
    builder, name = _resolve_architecture(arch)
    block = arch_kwargs.pop("block", None)
    _check_signature(builder, name, dict(arch_kwargs, block=block))
    with _isolated():
        for num_classes, in_channels in ((3, 1), (5, 3)):
            options = dict(arch_kwargs, block=block, num_classes=num_classes, in_channels=in_channels)
            what = f"architecture {name!r} ({_kwargs_repr(options)})"
            model = _build_model(builder, name, options)
            _check_model(model, what, in_channels, input_size, num_classes)
        twin = _build_model(builder, name, options)
        try:
            twin.load_state_dict(model.state_dict(), strict=True)
        except RuntimeError as exc:
            raise PluginContractError(
                f"{what}: a second build cannot load the first one's state dict, so its checkpoints will not "
                f"reload; the structure must depend only on the arguments: {exc}"
            ) from exc
        x = torch.randn(2, in_channels, input_size, input_size)
        with torch.no_grad():
            if not torch.allclose(twin.eval()(x), model.eval()(x), rtol=1e-5, atol=1e-6):
                raise PluginContractError(f"{what}: a second build given the first one's state dict computes a different function")
        if isinstance(block, str):
            by_class = _build_model(builder, name, dict(options, block=get_block(block)))
            by_name_keys = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
            by_class_keys = [(k, tuple(v.shape)) for k, v in by_class.state_dict().items()]
            if by_name_keys != by_class_keys:
                raise PluginContractError(
                    f"architecture {name!r} builds a different network for block={block!r} than for "
                    f"block={get_block(block).__name__} (the class the name resolves to); it must accept "
                    f"a block as a registry name, a class or None"
                )


def _resolve_architecture(arch: str | Callable[..., nn.Module]) -> tuple[Callable[..., nn.Module], str]:
    if isinstance(arch, str):
        return get_architecture(arch), arch
    if callable(arch):
        return arch, f"{getattr(arch, '__module__', '?')}.{getattr(arch, '__qualname__', repr(arch))}"
    raise PluginContractError(f"architecture must be a registry name or a callable, got {arch!r}")


def _check_signature(builder: Callable[..., Any], name: str, arch_kwargs: dict) -> None:
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        return  # a callable without a signature: the calls below speak for it
    try:
        signature.bind(num_classes=3, in_channels=1, **arch_kwargs)
    except TypeError as exc:
        raise PluginContractError(
            f"architecture {name!r} has the signature {signature}, which rejects "
            f"num_classes=..., in_channels=..., {_kwargs_repr(arch_kwargs)}: {exc}; expected "
            f"arch(*, num_classes, in_channels, block=None, **kwargs)"
        ) from None


def _build_model(builder: Callable[..., Any], name: str, options: dict) -> nn.Module:
    try:
        model = builder(**options)
    except Exception as exc:
        raise PluginContractError(
            f"architecture {name!r} failed to build with {_kwargs_repr(options)}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise PluginContractError(f"architecture {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _check_model(model: nn.Module, what: str, in_channels: int, size: int, num_classes: int) -> None:
    x = torch.randn(2, in_channels, size, size)
    expected = [2, num_classes]
    outputs = []
    for mode in ("train", "eval", "eval"):
        model.train(mode == "train")
        try:
            with torch.set_grad_enabled(mode == "train"):
                out = model(x)
        except Exception as exc:
            raise PluginContractError(
                f"{what} raised {type(exc).__name__} in {mode} mode on an input of shape {list(x.shape)}: {exc}"
            ) from exc
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        if got != expected:
            raise PluginContractError(
                f"{what} maps an input of shape {list(x.shape)} to {got} in {mode} mode; expected "
                f"logits of shape {expected} (N, num_classes)"
            )
        if not torch.isfinite(out).all():
            raise PluginContractError(f"{what} returned non-finite logits in {mode} mode")
        if mode == "train":
            _check_gradients(model, what, out, finite=False)  # every parameter takes part in training
        outputs.append(out)
    if not torch.equal(outputs[1], outputs[2]):
        raise PluginContractError(
            f"{what} is not deterministic in eval mode: two forward passes on one input differ; "
            f"dropout and stochastic depth must follow self.training"
        )
    # Finite gradients in eval mode, not train mode. In train mode a deep untrained network's
    # gradient through batch statistics explodes with depth (Yang et al. 2019, "A mean field
    # theory of batch normalization"), worst where a tiny input leaves a few values per channel
    # (two samples at 1x1 in resnet101's last stages: inf at 15 px; a 1202-layer plain network
    # overflows at any size): a property of the depth, not of the plugin. In eval mode the norm
    # layers are fixed affine maps (their running statistics), so only the network's own
    # arithmetic (a sqrt or division at zero, a log of a negative) can make a gradient non-finite.
    model.eval()
    with torch.enable_grad():
        out = model(x)
    _check_gradients(model, what, out, mode="eval")


# --- helpers ------------------------------------------------------------------------


@contextlib.contextmanager
def _isolated() -> Iterator[None]:
    # Seeded, so a failure reproduces; forked, so the caller's RNG stream is untouched.
    # One intra-op thread: these tensors are tiny, and on a busy CI machine several
    # threads per op spend most of their time waiting for each other (5x slower).
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _kwargs_repr(kwargs: dict) -> str:
    # Classes and functions by name (norm_layer=BatchNorm2d), everything else by repr.
    return ", ".join(f"{k}={getattr(v, '__name__', v)}" if callable(v) else f"{k}={v!r}" for k, v in kwargs.items())


def _call_repr(cls: type, in_channels: int, out_channels: int, stride: int, options: dict) -> str:
    extra = f", {_kwargs_repr(options)}" if options else ""
    return f"{cls.__name__}({in_channels}, {out_channels}, stride={stride}{extra})"


# --- export --------------------------------------------------------------------------


def check_export(
    arch: str | Callable[..., nn.Module],
    /,
    *,
    input_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 3,
    tolerance: float = 1e-4,
    **arch_kwargs: Any,
) -> float:
    """Check that an architecture exports to ONNX and computes there what it computes eagerly.

    Exports a freshly built network (eval mode) with ``torch.onnx``'s dynamo exporter and
    a dynamic batch size, as ``resnet-lightning export`` does, runs it in onnxruntime on
    batches of 1 and 4, and compares the logits with the eager model's. Needs the
    ``onnx``, ``onnxscript`` and ``onnxruntime`` packages (``resnet-lightning[export]``).

    Args:
        arch: A registry name or the builder itself.
        input_size: Height and width of the test images.
        in_channels: Input image channels.
        num_classes: Output classes.
        tolerance: Largest accepted difference of a logit, relative to the largest logit
            when that exceeds 1 (a fresh deep network's logits can be in the hundreds, where
            float rounding alone differs by more than 1e-4).
        **arch_kwargs: Options for the builder; keep the model small (a shallow depth):
            exporting takes seconds per few dozen layers.

    Returns:
        The largest absolute difference of a logit seen.

    Raises:
        PluginContractError: the export fails or differs from eager by more than ``tolerance``.
    """
    import tempfile
    from pathlib import Path

    from .export import ExportError, export

    builder, name = _resolve_architecture(arch)
    options = dict(arch_kwargs, num_classes=num_classes, in_channels=in_channels)
    what = f"architecture {name!r} ({_kwargs_repr(options)})"
    with _isolated(), tempfile.TemporaryDirectory() as scratch:
        model = _build_model(builder, name, options).eval()
        try:
            result = export(model, Path(scratch) / "model.onnx", "onnx", (in_channels, input_size, input_size),
                            tolerance=tolerance)
        except ExportError as exc:  # the exporter failed, or the export computes something else
            raise PluginContractError(f"{what}: {exc}") from exc
    if result is None:
        raise PluginContractError("check_export needs onnxruntime to compare the export with eager: pip install onnxruntime")
    return result[0]
