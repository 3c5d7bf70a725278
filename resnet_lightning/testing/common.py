"""What every check shares: the error, the framework's block options, the isolation, the wording."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..errors import UserError

# Keyword arguments every architecture built on resnet_lightning.models.ResNet
# passes to every block; a block must accept them, even to ignore them.
FRAMEWORK_BLOCK_KWARGS = ("norm_layer", "drop_path_rate", "shortcut")

# An option meant for some other block: architectures pass their block options to
# whatever block they are given (mnist_resnet passes kernel_size and bias).
FOREIGN_OPTION = {"option_for_another_block": True}


class PluginContractError(UserError, AssertionError):
    """A block or architecture breaks the plugin contract; the message says how.

    An ``AssertionError``, so pytest reports a failed test in a plugin's own suite;
    a :class:`~resnet_lightning.errors.UserError` too, as the plugin's author can fix
    it (``resnet-lightning plugins --check`` prints it as the plugin's one-line status).
    """


def build_block(cls: type, name: str, in_channels: int, out_channels: int, stride: int, options: dict) -> nn.Module:
    call = call_repr(cls, in_channels, out_channels, stride, options)
    try:
        block = cls(in_channels, out_channels, stride, **options)
    except Exception as exc:
        hint = ""
        if isinstance(exc, TypeError) and any(k in str(exc) for k in (*FRAMEWORK_BLOCK_KWARGS, *FOREIGN_OPTION)):
            hint = (
                f"; every block must accept {', '.join(FRAMEWORK_BLOCK_KWARGS)} and options meant for "
                f"other blocks through **kwargs (they may be ignored)"
            )
        raise PluginContractError(f"block {name!r} failed to build as {call}: {type(exc).__name__}: {exc}{hint}") from exc
    if not isinstance(block, nn.Module):
        raise PluginContractError(f"block {name!r}: {call} returned {type(block).__name__}, not an nn.Module")
    return block


def run_in_mode(module: nn.Module, x: torch.Tensor, mode: str, what: str) -> object:
    """``module(x)`` in ``"train"`` mode (with gradients) or ``"eval"`` mode; a failure names ``what``."""
    module.train(mode == "train")
    try:
        with torch.set_grad_enabled(mode == "train"):
            return module(x)
    except Exception as exc:
        raise PluginContractError(
            f"{what} raised {type(exc).__name__} in {mode} mode on an input of shape {list(x.shape)}: {exc}"
        ) from exc


def check_gradients(module: nn.Module, what: str, out: torch.Tensor, *, finite: bool = True, mode: str = "") -> None:
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



@contextlib.contextmanager
def isolated() -> Iterator[None]:
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


def kwargs_repr(kwargs: dict) -> str:
    # Classes and functions by name (norm_layer=BatchNorm2d), everything else by repr.
    return ", ".join(f"{k}={getattr(v, '__name__', v)}" if callable(v) else f"{k}={v!r}" for k, v in kwargs.items())


def call_repr(cls: type, in_channels: int, out_channels: int, stride: int, options: dict) -> str:
    extra = f", {kwargs_repr(options)}" if options else ""
    return f"{cls.__name__}({in_channels}, {out_channels}, stride={stride}{extra})"

