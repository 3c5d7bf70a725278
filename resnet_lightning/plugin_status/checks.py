"""What one plugin's status is: it loads, is of its kind, and keeps the contract (run in a child process).

The checks are :mod:`resnet_lightning.testing`'s: a block is built for two shapes a
network gives it and put through :func:`~resnet_lightning.testing.check_block_shape`;
an architecture is built (plainly, with its initialisation) and its blocks put
through :func:`~resnet_lightning.testing.check_network_blocks`, as
:func:`~resnet_lightning.create_model` does, then it must map two 16x16 images to
logits of the right shape. ``--check`` runs the full checker instead
(:func:`~resnet_lightning.testing.check_block` / :func:`~resnet_lightning.testing.check_architecture`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ..registry import DuplicatePluginError, PluginError, PluginSpec, get_architecture, get_block

IN_PROCESS = "<registered in process>"
NO_STRUCTURE = "ok (no branch/shortcut/merge: the residual analyses skip it)"


def plugin_status(spec: PluginSpec, check: bool, loaded: Callable[[], None] | None = None) -> str:
    """``"ok"``, ``"ok (<note>)"`` or ``"error: <reason>"`` for one registered plugin.

    Args:
        spec: The plugin.
        check: Run the full contract checker of :mod:`resnet_lightning.testing`.
        loaded: Called once the plugin is imported (the parent's time limit then says "being checked").
    """
    # By "distribution:name", so a name registered twice still loads each provider's own.
    name = spec.name if spec.distribution == IN_PROCESS else spec.qualified_name
    load = get_block if spec.kind == "block" else get_architecture
    try:
        obj = load(name)
    except DuplicatePluginError:  # two entry points of one distribution: still a duplicate
        return f"error: {spec.name!r} is registered twice by {spec.distribution}"
    except PluginError as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, SystemExit):
            return f"error: exited {cause.code} while loading (sys.exit({cause.code!r}) in {spec.target.partition(':')[0]})"
        return f"error: {type(cause).__name__}: {cause}"
    if loaded is not None:
        loaded()
    from torch import nn

    what = f"{type(obj).__name__} {getattr(obj, '__name__', None) or repr(obj)}"  # "function net", "int 3"
    if spec.kind == "block" and not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        return f"error: {spec.target} is {what}, not an nn.Module subclass"
    if spec.kind == "architecture" and not callable(obj):
        return f"error: {spec.target} is {what}, not a callable"
    if check:
        return _full_check(spec, name)
    return _block_status(obj, spec.name) if spec.kind == "block" else _architecture_status(obj)


def _full_check(spec: PluginSpec, name: str) -> str:
    from ..models.residual import ResidualStructureWarning
    from ..testing import PluginContractError, check_architecture, check_block

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResidualStructureWarning)
        try:
            (check_block if spec.kind == "block" else check_architecture)(name)
        except PluginContractError as exc:
            return f"error: breaks the {spec.kind} contract: {exc}"
    if any(issubclass(w.category, ResidualStructureWarning) for w in caught):
        return NO_STRUCTURE
    return "ok"


def _block_status(cls: type, name: str) -> str:
    """Build the block for two shapes a network gives it and check each, as ``create_model`` checks a network's."""
    from torch import nn

    from ..models import BlockContractError
    from ..models.residual import has_structure
    from ..testing import check_block_shape

    expansion = getattr(cls, "expansion", 1)
    if not isinstance(expansion, int) or isinstance(expansion, bool) or expansion < 1:
        return f"error: breaks the block contract: expansion={expansion!r}; expected a positive int"
    for in_channels, out_channels, stride in ((16, 16 * expansion, 1), (16 * expansion, 32 * expansion, 2)):
        options = dict(norm_layer=nn.BatchNorm2d, drop_path_rate=0.0, shortcut="B")
        try:
            block = cls(in_channels, out_channels, stride, **options)
            check_block_shape(block, name, in_channels, out_channels, stride)
        except BlockContractError as exc:
            return f"error: {exc}"  # "block 'name' breaks the block contract: ..." or "... failed on an input ..."
        except Exception as exc:
            return (
                f"error: breaks the block contract: {cls.__name__}({in_channels}, {out_channels}, stride={stride}, "
                f"norm_layer=BatchNorm2d, drop_path_rate=0.0, shortcut='B') raised {type(exc).__name__}: {exc}"
            )
    return "ok" if has_structure(block) else NO_STRUCTURE


def _architecture_status(builder: Any) -> str:
    """Build the network, check its blocks as ``create_model`` does, and run a batch of two small images through it."""
    import torch
    from torch import nn

    from ..models import BlockContractError
    from ..testing import check_network_blocks

    size, num_classes = 16, 3
    try:
        model = builder(num_classes=num_classes, in_channels=3)
    except Exception as exc:
        return f"error: fails to build with num_classes=3, in_channels=3: {type(exc).__name__}: {exc}"
    if not isinstance(model, nn.Module):
        return f"error: returns {type(model).__name__}, not nn.Module"
    x = torch.zeros(2, 3, size, size)
    try:
        check_network_blocks(model)
        with torch.no_grad():
            out = model.eval()(x)
    except BlockContractError as exc:
        return f"error: {exc}"
    except Exception as exc:
        return f"error: raises {type(exc).__name__} on an input of shape {list(x.shape)}: {exc}"
    got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != [2, num_classes]:
        return f"error: maps an input of shape {list(x.shape)} to {got}; expected logits of shape [2, {num_classes}]"
    return "ok"
