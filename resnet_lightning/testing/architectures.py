"""``check_architecture``: a builder's keywords, logits, gradients, determinism and reloadable state dict."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..registry import get_architecture, get_block
from .common import PluginContractError, check_gradients, isolated, kwargs_repr, run_in_mode

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
    builder, name = resolve_architecture(arch)
    block = arch_kwargs.pop("block", None)
    _check_signature(builder, name, dict(arch_kwargs, block=block))
    with isolated():
        for num_classes, in_channels in ((3, 1), (5, 3)):
            options = dict(arch_kwargs, block=block, num_classes=num_classes, in_channels=in_channels)
            what = f"architecture {name!r} ({kwargs_repr(options)})"
            model = build_model(builder, name, options)
            check_model(model, what, in_channels, input_size, num_classes)
        twin = build_model(builder, name, options)
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
            by_class = build_model(builder, name, dict(options, block=get_block(block)))
            by_name_keys = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
            by_class_keys = [(k, tuple(v.shape)) for k, v in by_class.state_dict().items()]
            if by_name_keys != by_class_keys:
                raise PluginContractError(
                    f"architecture {name!r} builds a different network for block={block!r} than for "
                    f"block={get_block(block).__name__} (the class the name resolves to); it must accept "
                    f"a block as a registry name, a class or None"
                )


def resolve_architecture(arch: str | Callable[..., nn.Module]) -> tuple[Callable[..., nn.Module], str]:
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
            f"num_classes=..., in_channels=..., {kwargs_repr(arch_kwargs)}: {exc}; expected "
            f"arch(*, num_classes, in_channels, block=None, **kwargs)"
        ) from None


def build_model(builder: Callable[..., Any], name: str, options: dict) -> nn.Module:
    try:
        model = builder(**options)
    except Exception as exc:
        raise PluginContractError(
            f"architecture {name!r} failed to build with {kwargs_repr(options)}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise PluginContractError(f"architecture {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_model(model: nn.Module, what: str, in_channels: int, size: int, num_classes: int) -> None:
    x = torch.randn(2, in_channels, size, size)
    expected = [2, num_classes]
    outputs = []
    for mode in ("train", "eval", "eval"):
        out = run_in_mode(model, x, mode, what)
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        if got != expected:
            raise PluginContractError(
                f"{what} maps an input of shape {list(x.shape)} to {got} in {mode} mode; expected "
                f"logits of shape {expected} (N, num_classes)"
            )
        if not torch.isfinite(out).all():
            raise PluginContractError(f"{what} returned non-finite logits in {mode} mode")
        if mode == "train":
            check_gradients(model, what, out, finite=False)  # every parameter takes part in training
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
    check_gradients(model, what, out, mode="eval")

