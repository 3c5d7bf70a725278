"""``create_model``: an architecture by registry name, with a readable error for bad arguments."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .registry import get_architecture


def create_model(
    arch: str,
    *,
    block: str | type | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered architecture, built-in or plugin, by name.

    ``create_model("resnet34", block="preact", num_classes=10)`` or
    ``create_model("cifar_resnet", depth=56, block="highway")``.

    Args:
        arch: Architecture name (see :func:`list_architectures`), or ``"dist:name"``.
        block: Block name (see :func:`list_blocks`), a block class, or None for the
            architecture's default.
        num_classes: Output classes; None keeps the architecture's default.
        in_channels: Input image channels; None keeps the architecture's default.
        **kwargs: Architecture options (``depth``, ``shortcut``, ``drop_path_rate``, ...).
    """
    builder = get_architecture(arch)
    given = {"num_classes": num_classes, "in_channels": in_channels}
    arguments = dict({k: v for k, v in given.items() if v is not None}, block=block, **kwargs)
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # some callables have no signature; let the call speak
        signature = None
    if signature is not None:
        try:
            signature.bind(**arguments)
        except TypeError as exc:
            accepted = ", ".join(p for p in signature.parameters if p not in ("args", "kwargs"))
            raise TypeError(f"architecture {arch!r} rejects the arguments {sorted(arguments)}: {exc}. It accepts: {accepted}") from None
    model = builder(**arguments)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"architecture {arch!r} returned {type(model).__name__}, not a torch.nn.Module; "
            "an architecture must return the model"
        )
    return model
