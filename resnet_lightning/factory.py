"""``create_model``: an architecture by registry name, with a readable error for bad arguments."""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Callable
from typing import Any

from torch import nn

from .models.pretrained import load_pretrained
from .registry import get_architecture


def create_model(
    arch: str,
    *,
    block: str | type | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    weights: str | os.PathLike[str] | None = None,
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
        weights: Pretrained weights: a name the architecture offers (``"IMAGENET1K_V1"``,
            ``"IMAGENET1K_V2"``, ``"DEFAULT"`` for ``resnet18`` .. ``resnet152``, from
            torchvision's cache or download), or a ``.pth`` state dict or ``.ckpt``
            checkpoint file. A head for another ``num_classes`` stays freshly
            initialised, a stem for other ``in_channels`` is adapted; the rest loads
            strictly (see :mod:`resnet_lightning.models.pretrained`).
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
            raise _rejected(arch, builder, arguments, exc) from None
    try:
        model = builder(**arguments)
    except TypeError as exc:
        # A builder taking **kwargs passes them on (the built-ins to ResNet), so a
        # misspelt option fails one call deeper; name the architecture all the same.
        match = _UNEXPECTED.search(str(exc))
        error = None if match is None else _rejected(arch, builder, arguments, exc, callee=match["callee"])
        if error is None:  # not an option of the architecture's (a block's own TypeError, say)
            raise
        raise error from exc
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"architecture {arch!r} returned {type(model).__name__}, not a torch.nn.Module; "
            "an architecture must return the model"
        )
    if weights is not None:
        load_pretrained(model, weights, builder=builder, arch=arch)
    return model


_UNEXPECTED = re.compile(r"(?:(?P<callee>[\w.]+)\(\) )?got an unexpected keyword argument '(?P<name>\w+)'")


def _rejected(
    arch: str, builder: Callable[..., Any], arguments: dict[str, Any], exc: TypeError, callee: str | None = None
) -> TypeError | None:
    """A TypeError naming the architecture, what it rejected and the keywords it accepts.

    None when ``exc`` came from deeper down (say a block refusing ``shortcut``): the
    refused keyword is not one of the caller's or one the architecture accepts.
    """
    accepted = _keywords(builder, keyword_only=False)
    if callee is not None:
        # The keywords went on through **kwargs: add the keyword-only options of each
        # function they passed through and of the callee that refused one
        # (cifar_resnet20 -> cifar_resnet -> ResNet.__init__), each found by name.
        tb, names = exc.__traceback__, {}
        while tb is not None:
            code, names = tb.tb_frame.f_code, tb.tb_frame.f_globals
            function = _lookup(getattr(code, "co_qualname", code.co_name), names)
            if getattr(function, "__code__", None) is code:
                accepted += _keywords(function, keyword_only=True)
            tb = tb.tb_next
        accepted += _keywords(_lookup(callee, names), keyword_only=True)
    # block_name is set by the builders themselves, never by the caller.
    accepted = [name for name in dict.fromkeys(accepted) if name != "block_name"]
    match = _UNEXPECTED.search(str(exc))
    if callee is not None and (match is None or match["name"] not in arguments or match["name"] in accepted):
        return None
    if match is not None and match["name"] in arguments:
        message = f"architecture {arch!r} does not accept {match['name']}={arguments[match['name']]!r} ({exc})."
        if close := difflib.get_close_matches(match["name"], accepted, n=1):
            message += f" Did you mean {close[0]!r}?"
    else:
        message = f"architecture {arch!r} rejects the arguments {sorted(arguments)}: {exc}."
    return TypeError(f"{message} It accepts: {', '.join(accepted) or 'no keyword arguments'}")


def _keywords(function: Any, keyword_only: bool) -> list[str]:
    """Names ``function`` takes by keyword (only the keyword-only ones if asked); [] if unknown."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = {inspect.Parameter.KEYWORD_ONLY}
    if not keyword_only:
        kinds.add(inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in parameters if p.kind in kinds and p.name != "self"]


def _lookup(qualname: str, names: dict[str, Any]) -> Any:
    """``"ResNet.__init__"`` in a module's globals, or None."""
    first, *rest = qualname.split(".")
    found = names.get(first)
    for part in rest:
        found = getattr(found, part, None)
    return found
