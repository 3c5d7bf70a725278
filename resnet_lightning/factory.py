"""``create_model``: an architecture by registry name, with a readable error for bad arguments."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import nn

from . import hub
from .errors import UserError, did_you_mean
from .models.features import FeatureExtractor
from .models.pretrained import WeightsError, load_pretrained
from .registry import get_architecture
from .testing.shapes import check_network_blocks


def create_model(
    arch: str,
    *,
    block: str | type | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    features_only: bool = False,
    out_indices: Iterable[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered architecture, built-in or plugin, by name.

    ``create_model("resnet34", block="preact", num_classes=10)``,
    ``create_model("cifar_resnet", depth=56, block="highway")``,
    ``create_model("resnet50", features_only=True, out_indices=(1, 2, 3, 4))`` or
    ``create_model("hf-hub:ORG/NAME")``.

    Args:
        arch: Architecture name (see :func:`list_architectures`), ``"dist:name"``, or
            ``"hf-hub:ORG/NAME"`` for a model in the Hub layout (:func:`from_pretrained`).
        block: Block name (see :func:`list_blocks`), a block class, or None for the
            architecture's default.
        num_classes: Output classes; None keeps the architecture's default.
        in_channels: Input image channels; None keeps the architecture's default.
        weights: Pretrained weights: a name the architecture offers (``"IMAGENET1K_V1"``,
            ``"IMAGENET1K_V2"``, ``"DEFAULT"`` for ``resnet18`` .. ``resnet152``, from
            torchvision's cache or download), a ``.pth`` state dict, a ``.ckpt``
            checkpoint, a ``.safetensors`` file or a directory in the Hub layout. A head for another ``num_classes`` stays freshly
            initialised, a stem for other ``in_channels`` is adapted; the rest loads
            strictly (see :mod:`resnet_lightning.models.pretrained`).
        features_only: Return a backbone (:class:`~resnet_lightning.models.features.FeatureExtractor`):
            images in, the feature maps at ``out_indices`` out, their channels and
            reductions in its ``feature_info``.
        out_indices: With ``features_only``: indices into the network's ``feature_info``
            (0 the stem, i stage i; negative from the end); None for all.
        **kwargs: Architecture options (``depth``, ``shortcut``, ``drop_path_rate``, ...).

    Raises:
        ArchitectureArgumentError: the architecture rejects an option; the message names it.
        BlockContractError: a block of the network breaks the block contract
            (:func:`resnet_lightning.testing.check_network_blocks`).
        FeaturesError: ``out_indices`` out of range, or a network without feature maps.
    """
    if isinstance(arch, str) and arch.startswith(hub.HUB_PREFIX):
        if block is not None or weights is not None:
            raise ArchitectureArgumentError(f"{arch} sets its own block and weights (its config.json); leave out block= and weights=")
        return from_pretrained(arch, num_classes=num_classes, in_channels=in_channels, features_only=features_only,
                               out_indices=out_indices, **kwargs)
    if out_indices is not None and not features_only:
        raise ArchitectureArgumentError(f"out_indices={out_indices!r} picks feature maps: pass features_only=True with it")
    builder = get_architecture(arch)
    given = {"num_classes": num_classes, "in_channels": in_channels}
    arguments = dict({k: v for k, v in given.items() if v is not None}, block=block, **kwargs)
    signature = _signature(builder)
    if signature is not None and not _takes_var_keyword(builder):
        try:  # a builder without **kwargs: its signature alone says what it takes
            signature.bind(**arguments)
        except TypeError as exc:
            raise _rejected(arch, builder, arguments, exc) from None
    try:
        model = builder(**arguments)
    except TypeError as exc:
        # A builder taking **kwargs passes them on (the built-ins to ResNet), so a
        # misspelt option fails one call deeper; name the architecture all the same.
        refused = _UNEXPECTED.search(str(exc))
        if refused is not None and refused["name"] in arguments and refused["name"] not in _accepted(builder):
            raise _rejected(arch, builder, arguments, exc) from exc
        # An option of the wrong type ({depth: } is depth=None, {depth: "56"} a string) fails
        # deep inside the builder's arithmetic: name it, if one of the caller's is mistyped.
        mistyped = _mistyped(builder, {k: v for k, v in kwargs.items()})
        if not mistyped:
            raise  # not one of the caller's options (a block's own TypeError, say)
        raise ArchitectureArgumentError(
            f"architecture {arch!r} cannot be built with {'; '.join(mistyped)} ({type(exc).__name__}: {exc})"
        ) from exc
    except UserError:
        raise  # already says what is wrong (a plugin builder's own create_model, say)
    except ValueError as exc:  # the builder's own check of a value (cifar depth 6n+2, ...)
        options = ", ".join(f"{k}={v!r}" for k, v in arguments.items() if v is not None and k not in given)
        raise ArchitectureArgumentError(f"architecture {arch!r} cannot be built with {options}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"architecture {arch!r} returned {type(model).__name__}, not a torch.nn.Module; "
            "an architecture must return the model"
        )
    # The block contract, once per network and on the meta device (no arithmetic): a plugin
    # block with the wrong output shape is one line naming it, not a crash mid-fit.
    check_network_blocks(model, meta=True)
    if weights is not None:
        load_pretrained(model, weights, builder=builder, arch=arch)
    return FeatureExtractor(model, out_indices, arch) if features_only else model


def from_pretrained(
    source: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    features_only: bool = False,
    out_indices: Iterable[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A network from a directory in the Hub layout (``model.safetensors`` + ``config.json``) or ``hf-hub:ORG/NAME``.

    The architecture, block and options come from ``config.json`` (its ``pretrained_cfg``,
    ``label_names`` and versions are on the model as ``pretrained_cfg``); ``kwargs``
    override options that leave the tensors' shapes as they are (``drop_path_rate``).
    Another ``num_classes`` gets a fresh head, another ``in_channels`` an adapted stem, as
    ``weights=`` does. ``hf-hub:`` downloads through ``huggingface_hub`` into its cache.

    Raises:
        PretrainedError: a file is missing or unreadable, the architecture's package is not
            installed (the message names it), or the tensors are another architecture's.
    """
    text = os.fspath(source)
    directory = hub.hub_directory(text.removeprefix(hub.HUB_PREFIX)) if text.startswith(hub.HUB_PREFIX) else Path(text)
    config, state = hub.read_pretrained(directory)
    hub.require_providers(config, directory)
    arch = config["architecture"]
    model = create_model(
        arch,
        block=config.get("block"),
        num_classes=num_classes or config.get("num_classes"),
        in_channels=in_channels or config.get("in_channels"),
        **dict(config.get("arch_kwargs") or {}, **kwargs),
    )
    try:
        load_pretrained(model, state, arch=arch)
    except WeightsError as err:
        raise hub.PretrainedError(
            f"{directory / hub.WEIGHTS_FILE} does not hold the tensors of the {arch} its {hub.CONFIG_FILE} describes ({err}); "
            "the files come from two different models: write the directory again with save_pretrained or export --format safetensors"
        ) from None
    model.pretrained_cfg = dict(config.get("pretrained_cfg") or {}, label_names=config.get("label_names"), source=text)
    return FeatureExtractor(model, out_indices, arch) if features_only else model


_UNEXPECTED = re.compile(r"got an unexpected keyword argument '(?P<name>[^']+)'")


class ArchitectureArgumentError(UserError, TypeError, ValueError):
    """An architecture rejected the options it was given; the message names them and the fix.

    A ``TypeError`` for an unknown keyword and a ``ValueError`` for a bad value, as
    Python callers expect either, and one class the CLI prints as a one-line error.
    """


def _rejected(arch: str, builder: Callable[..., Any], arguments: dict[str, Any], exc: TypeError) -> ArchitectureArgumentError:
    """The error naming the architecture, the keyword it refused and the keywords it accepts."""
    accepted = _accepted(builder)
    refused = _UNEXPECTED.search(str(exc))
    if refused is not None and refused["name"] in arguments:
        name = refused["name"]
        message = f"architecture {arch!r} does not accept {name}={arguments[name]!r}."
        key, _, value = name.replace(":", " ", 1).partition(" ")
        if arguments[name] is None and value.strip() and key in accepted:  # {depth 56} or {depth:56}: one key, no value
            message += f" YAML read {name!r} as one key without a value: write {key}: {value.strip()} (a colon, then a space)."
        elif hint := did_you_mean(repr(name), [repr(a) for a in accepted]):
            message += f" {hint[0].upper()}{hint[1:]}"  # "Did you mean 'depth'?", quoted as the names above
    else:
        message = f"architecture {arch!r} rejects the arguments {sorted(arguments)}: {exc}."
    return ArchitectureArgumentError(f"{message} It accepts: {', '.join(accepted) or 'no keyword arguments'}")


def _mistyped(builder: Callable[..., Any], options: dict[str, Any]) -> list[str]:
    """"depth=None: ..." for each option whose value cannot be what its parameter takes, judged by its default."""
    parameters = _parameters(builder)
    found = []
    for name, value in options.items():
        parameter = parameters.get(name)
        if parameter is None:
            continue
        default = parameter.default
        if value is None and default is not None:
            example = f", e.g. {name}: {default!r}" if default is not inspect.Parameter.empty else ""
            found.append(
                f"{name}=None: {name} has no value (in YAML, `{name}:` with nothing after it is null); give it one{example}"
            )
        elif (
            value is not None
            and default not in (None, inspect.Parameter.empty)
            and not isinstance(value, type(default))
            and not (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool))
        ):
            kind = type(default).__name__
            found.append(
                f"{name}={value!r}: {name} takes {'an' if kind[0] in 'aeiou' else 'a'} {kind} like its default {default!r}, "
                f"not a {type(value).__name__}" + (" (remove the quotes)" if isinstance(value, str) else "")
            )
    return found


def _accepted(builder: Callable[..., Any]) -> list[str]:
    """The keywords ``builder`` takes, read from signatures.

    A builder taking ``**kwargs`` passes them on, by the registry's convention, to the
    builders and classes it calls; their keyword-only parameters count too
    (``cifar_resnet56`` -> ``cifar_resnet`` -> ``ResNet``). The callees are the
    functions and classes its code names in its module, followed while they take
    ``**kwargs`` themselves. ``block_name`` is set by the builders, never by a caller.
    """
    return [name for name in _parameters(builder) if name != "block_name"]


def _parameters(builder: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword parameters ``builder`` takes, followed as :func:`_accepted` describes; the first of a name wins."""
    accepted = _keywords(builder, keyword_only=False)
    seen: set[int] = set()
    todo = [builder] if _takes_var_keyword(builder) else []
    while todo:
        function = todo.pop()
        code, names = getattr(function, "__code__", None), getattr(function, "__globals__", {})
        for name in code.co_names if code is not None else ():
            callee = names.get(name)
            target = getattr(callee, "__init__", None) if inspect.isclass(callee) else callee
            if not inspect.isfunction(target) or id(target) in seen or target.__module__ == "builtins":
                continue
            seen.add(id(target))
            accepted += _keywords(callee, keyword_only=True)
            if _takes_var_keyword(target):
                todo.append(target)
    parameters: dict[str, inspect.Parameter] = {}
    for parameter in accepted:
        parameters.setdefault(parameter.name, parameter)
    return parameters


def _signature(function: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):  # some callables have no signature
        return None


def _takes_var_keyword(function: Any) -> bool:
    signature = _signature(function)
    return signature is not None and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def _keywords(function: Any, keyword_only: bool) -> list[inspect.Parameter]:
    """The parameters ``function`` takes by keyword (only the keyword-only ones if asked); [] if unknown."""
    signature = _signature(function)
    if signature is None:
        return []
    kinds = {inspect.Parameter.KEYWORD_ONLY}
    if not keyword_only:
        kinds.add(inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in signature.parameters.values() if p.kind in kinds and p.name != "self"]
