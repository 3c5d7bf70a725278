"""Pretrained weights: torchvision's ImageNet weights, a plugin's own, or a local file.

``load_pretrained(model, "IMAGENET1K_V2", builder=resnet50)`` fills a freshly built
network from

* a **name** the architecture offers through its ``pretrained_weights`` hook (the
  built-in ``resnet18`` .. ``resnet152`` offer torchvision's ``IMAGENET1K_V1``,
  ``IMAGENET1K_V2`` and ``DEFAULT``, downloaded once into torch hub's cache by
  torchvision's own weight API, hash-checked);
* a **file**: a state dict saved with ``torch.save`` (torchvision's ``.pth`` files), or a
  Lightning checkpoint of this framework (its ``model.`` prefix is stripped).

Everything loads strictly, except what a fine-tune changes on purpose: a classifier
head of another size (``num_classes``) is left as initialised, and a stem convolution
for another number of input channels is adapted as timm's ``adapt_input_conv`` does.
Anything else that does not fit (another architecture's weights) is a
:class:`WeightsError` naming the keys. No Lightning here: ``create_model`` calls it.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..safe_load import FileLoadError, UnsafeFileError, safe_load

TORCHVISION_ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
SAFETENSORS_FILE = "model.safetensors"  # in a directory of the Hub layout (resnet_lightning.hub)
CHECKPOINT_MODEL_PREFIX = "model."  # ResNetClassifier keeps the network as self.model


class WeightsError(UserError, ValueError):
    """Weights that cannot be found, read or loaded into the network; the message says what to do."""


def torchvision_weights(arch: str, name: str, progress: bool = True) -> dict[str, Tensor]:
    """torchvision's ImageNet weights for one of ``resnet18`` .. ``resnet152``.

    Downloaded by torchvision (``WeightsEnum.get_state_dict``) into torch hub's cache
    (``$TORCH_HOME/hub/checkpoints``) the first time, read from there afterwards.

    Args:
        arch: ``"resnet18"`` .. ``"resnet152"``.
        name: ``"IMAGENET1K_V1"``, ``"IMAGENET1K_V2"`` (ResNet-50 and deeper), ``"DEFAULT"``,
            or the full ``"ResNet50_Weights.IMAGENET1K_V2"``.
        progress: Show a download progress bar.
    """
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    short = name.split(".", 1)[1] if name.startswith(f"{enum.__name__}.") else name
    if short not in enum.__members__:
        raise WeightsError(
            f"unknown weights {name!r} for {arch}; it offers {', '.join(enum.__members__)} (torchvision's) "
            f"(or pass a path to a .pth state dict or a .ckpt checkpoint)"
        )
    weights = enum[short]
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cache.is_file():  # the hash is checked only when downloading: a cached file is read as any other file
        return read_weights_file(cache)
    try:
        return weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad hash is a RuntimeError
        raise WeightsError(
            f"could not fetch {enum.__name__}.{short} from {weights.url} ({type(err).__name__}: {err}); "
            f"on a machine without internet, download that file and put it at {cache}, "
            "or pass the file's path as the weights"
        ) from None


class _TorchvisionHook:
    """A callable ``pretrained_weights`` hook whose ``names`` are read from torchvision when first asked.

    Lazily: importing torchvision.models takes seconds (it imports torch._dynamo), and
    importing the built-in architectures (``resnet-lightning plugins``, every DDP worker)
    must not pay for it unless weights are used.
    """

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.__doc__ = f"torchvision's {arch} ImageNet weights by name (IMAGENET1K_V1, ..., DEFAULT)."

    def __call__(self, name: str) -> dict[str, Tensor]:
        return torchvision_weights(self.arch, name)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:  # checked before anything downloads
        from torchvision.models import get_model_weights

        return tuple(get_model_weights(self.arch).__members__)


def torchvision_hook(arch: str) -> Callable[[str], dict[str, Tensor]]:
    """The ``pretrained_weights`` hook of a built-in ImageNet ResNet: :func:`torchvision_weights` for ``arch``."""
    return _TorchvisionHook(arch)


def is_weights_file(weights: str | os.PathLike[str]) -> bool:
    """Whether ``weights`` names a file rather than a weight name: it exists, or looks like a path."""
    text = os.fspath(weights)
    return Path(text).expanduser().exists() or os.sep in text or "/" in text or text.lower().endswith(WEIGHT_FILE_SUFFIXES)


def read_weights_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A state dict from a file: a plain state dict, the network's part of one of our checkpoints, or safetensors.

    A directory in the Hub layout (``save_pretrained``, ``export --format safetensors``) gives its ``model.safetensors``.
    """
    path = Path(path).expanduser()
    if path.is_dir() and (path / SAFETENSORS_FILE).is_file():
        path = path / SAFETENSORS_FILE
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))  # no pickle: nothing in the file can run
        except SafetensorError as err:
            raise WeightsError(f"weights file {path} is not a safetensors file ({err})") from None
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist; pass an existing .pth/.ckpt/.safetensors file, a directory "
            f"holding {SAFETENSORS_FILE}, or a weight name "
            f"such as IMAGENET1K_V1 (for {', '.join(TORCHVISION_ARCHITECTURES)})"
        )
    try:
        loaded = safe_load(path, "weights file")  # a weights file from the internet must not run code when read
    except UnsafeFileError as err:
        raise WeightsError(str(err)) from None
    except FileLoadError as err:
        raise WeightsError(
            f"{err} (a weights file is a state dict saved with torch.save(model.state_dict(), path), or a .ckpt)"
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):  # a Lightning checkpoint
        state = loaded["state_dict"]
        if any(key.startswith(CHECKPOINT_MODEL_PREFIX) for key in state):
            state = {k.removeprefix(CHECKPOINT_MODEL_PREFIX): v for k, v in state.items() if k.startswith(CHECKPOINT_MODEL_PREFIX)}
        loaded = state
    if not isinstance(loaded, Mapping) or not loaded or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise WeightsError(
            f"weights file {path} holds a {type(loaded).__name__}, not a state dict of tensors "
            "(save one with torch.save(model.state_dict(), path))"
        )
    return dict(loaded)


def check_weights(weights: str | os.PathLike[str], builder: Callable[..., Any], arch: str) -> None:
    """Raise :class:`WeightsError` now for a weight name that cannot work (nothing is read or downloaded).

    A name needs the architecture's ``pretrained_weights`` hook and, if the hook lists
    its ``names``, must be one of them. Files are not looked at: a model rebuilt from a
    checkpoint (``load_from_checkpoint``) must not need the file it was first initialised from.
    """
    if is_weights_file(weights):
        return
    hook = getattr(builder, "pretrained_weights", None)
    if not callable(hook):
        resolve_weights(weights, builder, arch)  # raises: no named weights here
    names = getattr(hook, "names", None)
    if names and os.fspath(weights).rsplit(".", 1)[-1] not in names:
        raise WeightsError(
            f"unknown weights {os.fspath(weights)!r} for {arch}; it offers {', '.join(names)} "
            "(or pass a path to a .pth state dict or a .ckpt checkpoint)"
        )


def resolve_weights(weights: str | os.PathLike[str], builder: Callable[..., Any], arch: str) -> dict[str, Tensor]:
    """The state dict that ``weights`` names for the architecture ``arch`` (built by ``builder``).

    Args:
        weights: A file path, or a name the architecture's ``pretrained_weights`` hook knows.
        builder: The architecture's builder (its ``pretrained_weights`` attribute is the hook).
        arch: The architecture's registry name, for messages.
    """
    if is_weights_file(weights):
        return read_weights_file(weights)
    hook = getattr(builder, "pretrained_weights", None)
    if not callable(hook):
        raise WeightsError(
            f"architecture {arch!r} offers no named weights, so {os.fspath(weights)!r} must be a file and it does not "
            f"exist; named ImageNet weights exist for {', '.join(TORCHVISION_ARCHITECTURES)} "
            "(IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT), or pass a .pth state dict or .ckpt checkpoint"
        )
    try:
        state = hook(os.fspath(weights))
    except WeightsError:
        raise
    except (KeyError, ValueError, OSError, RuntimeError) as err:
        raise WeightsError(f"architecture {arch!r} could not provide weights {os.fspath(weights)!r}: {err}") from None
    if not isinstance(state, Mapping):
        raise WeightsError(
            f"architecture {arch!r}'s pretrained_weights({os.fspath(weights)!r}) returned {type(state).__name__}, "
            "not a state dict; the hook must return a mapping of parameter names to tensors"
        )
    return dict(state)


def classifier_head(model: nn.Module) -> str:
    """The name of the network's classifier: ``fc`` (torchvision, timm's ResNet), else its last ``nn.Linear``."""
    if isinstance(getattr(model, "fc", None), nn.Linear):
        return "fc"
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise WeightsError(f"{type(model).__name__} has no nn.Linear classifier head to re-initialise for new classes")
    return linears[-1]


def stem_conv(model: nn.Module) -> str:
    """The name of the first convolution, the one that sees the input channels."""
    return next(name for name, module in model.named_modules() if isinstance(module, nn.Conv2d))


def adapt_input_conv(in_channels: int, weight: Tensor) -> Tensor:
    """A stem convolution's weight ``(O, I, kH, kW)`` for ``in_channels`` inputs instead of ``I``.

    As timm's ``adapt_input_conv``: for one channel, the sum over the ``I`` channels
    (a grey image ``g`` gives the response the original gives ``(g, g, g)``); otherwise
    the channels repeated cyclically and scaled by ``I / in_channels``, which keeps the
    scale of the response (exactly, for a constant image, when ``in_channels`` is a
    multiple of ``I``).
    """
    out_channels, source, kh, kw = weight.shape
    dtype = weight.dtype
    weight = weight.float()
    if in_channels == 1:
        adapted = weight.sum(dim=1, keepdim=True)  # (O, 1, kH, kW)
    else:
        repeat = math.ceil(in_channels / source)
        adapted = weight.repeat(1, repeat, 1, 1)[:, :in_channels] * (source / in_channels)  # (O, in_channels, kH, kW)
    return adapted.to(dtype)


def load_pretrained(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    builder: Callable[..., Any] | None = None,
    arch: str = "the architecture",
) -> dict[str, list[str]]:
    """Load ``weights`` into ``model``, adapting the head and the stem where the shapes say so.

    Args:
        model: A freshly built network.
        weights: A weight name, a file path, or a state dict.
        builder: The architecture's builder, whose ``pretrained_weights`` hook resolves names.
        arch: The architecture's name, for messages.

    Returns:
        ``{"reinitialised": [...], "adapted": [...]}``: the keys left as initialised (a
        head of another size) and those adapted (a stem for other input channels).

    Raises:
        WeightsError: The weights cannot be found or read, or belong to another architecture.
    """
    source = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else "the given state dict"
    if isinstance(weights, Mapping):
        state = dict(weights)
    else:
        state = resolve_weights(weights, builder, arch)
    own = model.state_dict()
    head, stem = classifier_head(model), stem_conv(model)
    reinitialised, adapted = [], []
    head_keys = [key for key in own if key.startswith(f"{head}.")]
    if any(key in state and state[key].shape != own[key].shape for key in head_keys):
        reinitialised = head_keys  # another num_classes: keep the fresh head (He init, zero bias)
        state = {k: v for k, v in state.items() if k not in head_keys}
    stem_key = f"{stem}.weight"
    if stem_key in state and state[stem_key].ndim == 4 and own[stem_key].ndim == 4:
        theirs, ours = state[stem_key].shape, own[stem_key].shape
        if theirs[1] != ours[1] and theirs[0] == ours[0] and theirs[2:] == ours[2:]:
            state[stem_key] = adapt_input_conv(ours[1], state[stem_key])
            adapted.append(stem_key)
    missing = [key for key in own if key not in state and key not in reinitialised]
    unexpected = [key for key in state if key not in own]
    wrong = [f"{key} {list(state[key].shape)} vs {list(own[key].shape)}" for key in own if key in state and state[key].shape != own[key].shape]
    if missing or unexpected or wrong:
        problems = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape (weights vs network)", wrong)):
            if keys:
                problems.append(f"{len(keys)} {what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}")
        raise WeightsError(
            f"weights {source} do not fit {arch} ({'; '.join(problems)}); they were saved from another architecture, "
            "block or width. Use the --model.arch/--model.block/--model.arch_kwargs they were trained with"
        )
    model.load_state_dict(state, strict=False)  # strict in effect: only the reinitialised head is absent
    return {"reinitialised": reinitialised, "adapted": adapted}
