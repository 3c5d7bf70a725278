"""safetensors and the Hugging Face Hub layout: ``model.safetensors``, ``config.json``, ``README.md``.

A directory in this layout carries no code: the tensors in safetensors (read without
unpickling anything), and in ``config.json`` what builds the network they fill (the
architecture and block by registry name, their options, the classes, the normalisation,
the input size) and the packages that provide them, with their versions. Written by
:func:`save_pretrained` and ``resnet-lightning export --format safetensors``; read by
:func:`resnet_lightning.from_pretrained` (a directory, or ``hf-hub:ORG/NAME``, downloaded
with ``huggingface_hub``) and ``create_model("hf-hub:ORG/NAME")``. Building the network is
``factory``'s; this module only writes and reads the files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError
from .registry import list_architectures, list_blocks, list_plugins
from .storage import write_atomically

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
HUB_PREFIX = "hf-hub:"
LAYOUT_VERSION = 1
LIBRARY = "resnet-lightning"


class PretrainedError(UserError, ValueError):
    """A pretrained directory cannot be written or read; the message names the file and the fix."""


def _package_version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _provider(kind: str, name: str | None) -> dict[str, str] | None:
    """``{"name", "distribution", "version"}`` of the installed plugin ``name`` of ``kind``; None for None."""
    if name is None:
        return None
    distribution, _, short = name.rpartition(":")
    specs = [s for s in list_plugins(kind) if s.name == short and (not distribution or s.distribution == distribution)]
    spec = specs[0] if specs else None
    return {
        "name": short,
        "distribution": spec.distribution if spec else "",
        "version": spec.version if spec else "",
    }


def pretrained_config(
    *,
    arch: str,
    num_classes: int,
    in_channels: int,
    block: str | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    class_names: list[str] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    input_size: list[int] | None = None,
    preprocess: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` of a network: what builds it, what it expects, who provides it.

    Args:
        arch: The architecture's registry name.
        num_classes: Output classes.
        in_channels: Input image channels.
        block: The block's registry name, or None for the architecture's default.
        arch_kwargs: The architecture's options (``{"depth": 20}``); plain JSON values.
        class_names: The classes, in logit order.
        mean: Per-channel normalisation mean the network was trained with.
        std: Per-channel normalisation standard deviation.
        input_size: ``[C, H, W]`` it was trained on.
        preprocess: Every step from an image file to the input (image-file data modules).
    """
    if block is not None and not isinstance(block, str):
        raise PretrainedError(f"block {block!r} is a class; a pretrained directory names blocks by registry name (block='basic', ...)")
    try:
        arch_kwargs = json.loads(json.dumps(dict(arch_kwargs or {})))
    except TypeError as err:
        raise PretrainedError(f"arch_kwargs {arch_kwargs!r} must be plain JSON values (numbers, strings, lists): {err}") from None
    providers = {"architecture": _provider("architecture", arch), "block": _provider("block", block)}
    packages = {LIBRARY: _package_version(LIBRARY) or "", "torch": torch.__version__}
    for provider in providers.values():
        if provider and provider["distribution"]:
            packages[provider["distribution"]] = provider["version"]
    return {
        "library_name": LIBRARY,
        "layout_version": LAYOUT_VERSION,
        "architecture": arch,
        "block": block,
        "arch_kwargs": arch_kwargs,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "label_names": class_names,
        "pretrained_cfg": {"input_size": input_size, "mean": mean, "std": std, "preprocess": preprocess},
        "providers": providers,
        "packages": packages,
    }


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    config: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
    **options: Any,
) -> Path:
    """Write ``model``'s tensors, its ``config.json`` and a model card into ``directory``.

    ``save_pretrained(model, "out", arch="cifar_resnet", arch_kwargs={"depth": 20}, num_classes=10, in_channels=3)``.
    Each file is written atomically; the directory is made if needed.

    Args:
        model: The network (its ``state_dict`` is written, on the CPU, as stored).
        directory: Where to write ``model.safetensors``, ``config.json`` and ``README.md``.
        config: From :func:`pretrained_config`; or None, and its arguments in ``options``.
        card: For the model card: ``title``, ``metrics`` (name -> value), ``recipe`` and
            ``data`` (option -> value); what is missing is said to be not recorded.

    Returns:
        The directory.
    """
    from safetensors.torch import save as save_tensors

    config = dict(config) if config is not None else pretrained_config(**options)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Copies: safetensors refuses tensors that share memory, and a view's storage would be written whole.
    state = {key: tensor.detach().to("cpu", copy=True).contiguous() for key, tensor in model.state_dict().items()}
    write_atomically(directory / WEIGHTS_FILE, save_tensors(state, metadata={"format": "pt", "library": LIBRARY}))
    write_atomically(directory / CONFIG_FILE, json.dumps(dict(config), indent=2) + "\n")
    write_atomically(directory / CARD_FILE, model_card(config, card or {}))
    return directory


def read_pretrained(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``config.json`` and the tensors of ``model.safetensors`` in ``directory``, checked to be there and readable."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PretrainedError(
            f"{directory} is not a directory; from_pretrained takes a directory holding {WEIGHTS_FILE} and "
            f"{CONFIG_FILE} (written by save_pretrained or resnet-lightning export --format safetensors), or hf-hub:ORG/NAME"
        )
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path, what in ((config_path, "what builds the network"), (weights_path, "the tensors")):
        if not path.is_file():
            raise PretrainedError(
                f"{directory} has no {path.name} ({what}); a pretrained directory holds {WEIGHTS_FILE} and {CONFIG_FILE} "
                "as save_pretrained and resnet-lightning export --format safetensors write them: write it again with one of those"
            )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedError(f"{config_path} is not JSON ({err}); write the directory again with save_pretrained") from None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise PretrainedError(
            f"{config_path} names no architecture (no \"architecture\" key); it was not written by {LIBRARY} "
            "(save_pretrained or export --format safetensors)"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights_path))
    except SafetensorError as err:
        raise PretrainedError(f"{weights_path} is not a safetensors file ({err}); write the directory again") from None
    return config, state


def require_providers(config: Mapping[str, Any], directory: str | os.PathLike[str]) -> None:
    """Raise :class:`PretrainedError` naming the package to install when the architecture or block is not installed."""
    for kind, names in (("architecture", list_architectures), ("block", list_blocks)):
        name = config.get(kind)
        if name is None or name.rpartition(":")[2] in names():
            continue
        provider = (config.get("providers") or {}).get(kind) or {}
        package = provider.get("distribution") or "the package that provides it"
        release = f"{package}=={provider['version']}" if provider.get("version") else package
        raise PretrainedError(
            f"{Path(directory) / CONFIG_FILE} names {kind} {name!r}, from the package {package} "
            f"{provider.get('version', '')}, which is not installed here: pip install {release}, then load it again"
        )


def hub_directory(repo_id: str) -> Path:
    """The local copy of the Hub repository ``repo_id`` (``ORG/NAME``), downloaded by ``huggingface_hub`` into its cache.

    Only the three files of the layout are fetched. ``HF_HUB_OFFLINE=1`` uses the cache alone.
    """
    try:
        import huggingface_hub
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise PretrainedError(
            f"{HUB_PREFIX}{repo_id} is downloaded with huggingface_hub, which is not installed: "
            "pip install 'resnet-lightning[hub]' (or pass a local directory)"
        ) from None
    try:
        files = [CONFIG_FILE, WEIGHTS_FILE, CARD_FILE]
        return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=files, library_name=LIBRARY))
    except (hub_errors.HfHubHTTPError, hub_errors.LocalEntryNotFoundError, hub_errors.HFValidationError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PretrainedError(
            f"cannot fetch {HUB_PREFIX}{repo_id} from the Hugging Face Hub ({first}); check the name ORG/NAME, "
            "your network and `hf auth login` for a private repository"
        ) from None


def model_card(config: Mapping[str, Any], card: Mapping[str, Any]) -> str:
    """``README.md``: the Hub's front matter, then metrics, recipe, data and how to load the model."""
    arch, block = config["architecture"], config.get("block")
    title = card.get("title") or f"{arch}{f' ({block} blocks)' if block else ''}"
    cfg = config.get("pretrained_cfg") or {}
    classes = config.get("label_names")
    lines = [
        "---",
        f"library_name: {LIBRARY}",
        "pipeline_tag: image-classification",
        f"tags: [image-classification, {LIBRARY}, {arch}]",
        "---",
        "",
        f"# {title}",
        "",
        f"Architecture `{arch}`, block `{block or 'its default'}`, options `{json.dumps(config.get('arch_kwargs') or {})}`; "
        f"{config['num_classes']} classes{': ' + ', '.join(map(str, classes)) if classes else ''}; "
        + (f"input `{cfg['input_size']}` (C, H, W)" if cfg.get("input_size") else "input size not recorded")
        + (f", normalised with mean `{cfg['mean']}` and std `{cfg['std']}`." if cfg.get("mean") is not None else "."),
        "",
    ]
    for heading, key, what in (("Metrics", "metrics", "metric"), ("Recipe", "recipe", "option"), ("Data", "data", "option")):
        values = card.get(key) or {}
        lines += [f"## {heading}", ""]
        if values:
            lines += [f"| {what} | value |", "|---|---|"]
            lines += [f"| {name} | {json.dumps(value) if not isinstance(value, str) else value} |" for name, value in values.items()]
        else:
            lines.append("Not recorded.")
        lines.append("")
    packages = ", ".join(f"{name} {release}" for name, release in (config.get("packages") or {}).items())
    lines += [
        "## How to load",
        "",
        f"Needs {packages} (the architecture's package must be installed; the files hold no code).",
        "",
        "```python",
        "from resnet_lightning import create_model, from_pretrained",
        "",
        'model = from_pretrained("path/to/this/directory").eval()  # or create_model("hf-hub:ORG/NAME")',
        "```",
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "PretrainedError",
    "hub_directory",
    "model_card",
    "pretrained_config",
    "read_pretrained",
    "require_providers",
    "save_pretrained",
]
