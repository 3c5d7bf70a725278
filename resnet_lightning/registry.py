"""Entry-point registry for residual blocks and architectures.

Every block and every architecture, the built-in ones included, is found through
one of two entry-point groups, so a third party adds a variant by publishing a
package and nothing in the core changes::

    [project.entry-points."resnet_lightning.blocks"]
    my_block = "my_package.blocks:MyBlock"

    [project.entry-points."resnet_lightning.architectures"]
    my_net = "my_package.models:my_net"

Discovery is lazy, in the manner of xarray's backend plugins: listing reads
installed packages' metadata only, and an entry point is imported the first time
it is used. A plugin that fails to import is reported with its name, its
distribution and the original exception, and breaks nothing else. Two
distributions claiming one name are an error naming both, never resolved by
import order.

Loading a plugin runs its code. ``RESNET_LIGHTNING_PLUGINS`` restricts discovery:
unset or ``all`` loads every installed plugin; ``none`` keeps only the built-ins
of ``resnet-lightning`` itself; a comma-separated list of distribution names
(``se-resnet,wide-resnet``) keeps the built-ins and those distributions.

This module deliberately contains no ``torch.nn`` code.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from .errors import UserError, did_you_mean

__all__ = [
    "BLOCK_GROUP", "ARCHITECTURE_GROUP", "PLUGINS_ENV", "PluginError", "UnknownPluginError", "PluginLoadError",
    "DuplicatePluginError", "PluginSpec", "list_blocks", "list_architectures", "list_plugins", "get_block",
    "get_architecture", "register_block", "register_architecture", "refresh_plugins",
]

BLOCK_GROUP = "resnet_lightning.blocks"
ARCHITECTURE_GROUP = "resnet_lightning.architectures"
PLUGINS_ENV = "RESNET_LIGHTNING_PLUGINS"
CORE_DISTRIBUTION = "resnet-lightning"

Kind = Literal["block", "architecture"]
_GROUPS: dict[str, str] = {"block": BLOCK_GROUP, "architecture": ARCHITECTURE_GROUP}
_IN_PROCESS = "<registered in process>"


class PluginError(UserError, LookupError):
    """Base class of every registry error; the message says what to do next."""


class UnknownPluginError(PluginError, KeyError):
    """No block or architecture of that name is registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginLoadError(PluginError, ImportError):
    """A plugin's entry point was found but importing it failed."""


class DuplicatePluginError(PluginError):
    """Two distributions register the same name in the same group."""


@dataclass(frozen=True)
class PluginSpec:
    """What the metadata says about one registered name, read without importing it.

    Attributes:
        name: The registry name (``"basic"``, ``"resnet50"``).
        kind: ``"block"`` or ``"architecture"``.
        distribution: The installed distribution that provides it (or
            ``"<registered in process>"`` for :func:`register_block`).
        version: That distribution's version ("" when registered in process).
        target: The entry point's ``module:attribute`` value.
    """

    name: str
    kind: str
    distribution: str
    version: str
    target: str

    @property
    def qualified_name(self) -> str:
        """``distribution:name``, which picks one provider when two claim ``name``."""
        return f"{self.distribution}:{self.name}"


def _normalize(distribution: str) -> str:
    # PEP 503 normalisation, so "Wide_ResNet" and "wide-resnet" are one name.
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _allowed_distributions() -> set[str] | None:
    """The distributions ``RESNET_LIGHTNING_PLUGINS`` allows; None means all."""
    value = os.environ.get(PLUGINS_ENV, "").strip()
    if value.lower() in ("", "all"):
        return None
    if value.lower() in ("none", "0", "off", "false"):
        return {CORE_DISTRIBUTION}
    return {CORE_DISTRIBUTION} | {_normalize(d.strip()) for d in value.split(",") if d.strip()}


def _spec(kind: str, ep: EntryPoint) -> PluginSpec:
    dist = ep.dist
    return PluginSpec(
        name=ep.name,
        kind=kind,
        distribution=dist.name if dist is not None else "<unknown distribution>",
        version=dist.version if dist is not None else "",
        target=ep.value,
    )


@functools.cache
def _discovered(kind: str) -> dict[str, list[tuple[PluginSpec, EntryPoint]]]:
    """Entry points of one group by name; metadata only, nothing is imported."""
    allowed = _allowed_distributions()
    found: dict[str, list[tuple[PluginSpec, EntryPoint]]] = {}
    for ep in entry_points(group=_GROUPS[kind]):
        spec = _spec(kind, ep)
        if allowed is not None and _normalize(spec.distribution) not in allowed:
            continue
        found.setdefault(ep.name, []).append((spec, ep))
    return found


# Objects registered in process with register_block/register_architecture, and
# entry points already imported, so each plugin module is imported at most once.
_registered: dict[str, dict[str, tuple[PluginSpec, Any]]] = {"block": {}, "architecture": {}}
_loaded: dict[tuple[str, str], Any] = {}


def refresh_plugins() -> None:
    """Forget discovered entry points so newly installed plugins are found.

    Call it after installing a plugin into a running interpreter, or after
    changing ``RESNET_LIGHTNING_PLUGINS``. In-process registrations are kept.
    """
    _discovered.cache_clear()
    _loaded.clear()


def list_plugins(kind: Kind | None = None) -> list[PluginSpec]:
    """Every registered block and/or architecture with its provider, sorted by name.

    Reads metadata only: no plugin is imported, so a broken plugin is listed
    here and reported only when it is used.

    Args:
        kind: ``"block"``, ``"architecture"``, or None for both.
    """
    kinds = [kind] if kind is not None else list(_GROUPS)
    specs = []
    for k in kinds:
        _check_kind(k)
        specs += [spec for candidates in _discovered(k).values() for spec, _ in candidates]
        specs += [spec for spec, _ in _registered[k].values()]
    return sorted(specs, key=lambda s: (s.kind, s.name, s.distribution))


def _names(kind: str) -> list[str]:
    discovered = _discovered(kind)
    for name, candidates in discovered.items():
        if len(candidates) > 1:
            who = " and ".join(spec.distribution for spec, _ in candidates)
            warnings.warn(
                f"{kind} {name!r} is registered by both {who}; using it by name is an error "
                f"until one is uninstalled (or name it as 'distribution:{name}')",
                stacklevel=3,
            )
    return sorted(set(discovered) | set(_registered[kind]))


def list_blocks() -> list[str]:
    """Names of every registered residual block (built-in and plugin), sorted."""
    return _names("block")


def list_architectures() -> list[str]:
    """Names of every registered architecture (built-in and plugin), sorted."""
    return _names("architecture")


def get_block(name: str) -> type:
    """The block class registered as ``name`` (or ``"distribution:name"``).

    Raises:
        UnknownPluginError: no such block; the message lists the available ones.
        DuplicatePluginError: two distributions register ``name``.
        PluginLoadError: the plugin providing ``name`` failed to import.
    """
    return _load("block", name)


def get_architecture(name: str) -> Callable[..., Any]:
    """The architecture builder registered as ``name`` (or ``"distribution:name"``).

    Raises:
        UnknownPluginError: no such architecture; the message lists the available ones.
        DuplicatePluginError: two distributions register ``name``.
        PluginLoadError: the plugin providing ``name`` failed to import.
    """
    return _load("architecture", name)


def _check_kind(kind: str) -> None:
    if kind not in _GROUPS:
        raise ValueError(f"unknown plugin kind {kind!r}; expected one of {sorted(_GROUPS)}")


def _load(kind: str, name: str) -> Any:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {type(name).__name__} {name!r}")
    distribution, _, short = name.rpartition(":")
    if short in _registered[kind] and not distribution:
        return _registered[kind][short][1]

    candidates = _discovered(kind).get(short, [])
    if distribution:
        candidates = [c for c in candidates if _normalize(c[0].distribution) == _normalize(distribution)]
    if not candidates:
        raise UnknownPluginError(_unknown_message(kind, name))
    if len(candidates) > 1:
        providers = ", ".join(f"{s.distribution} {s.version} ({s.target})" for s, _ in candidates)
        choices = " or ".join(repr(s.qualified_name) for s, _ in candidates)
        raise DuplicatePluginError(
            f"{kind} {short!r} is registered by more than one distribution: {providers}. "
            f"Name the one you mean as {choices}, uninstall one of them, or restrict "
            f"discovery with {PLUGINS_ENV}=<distribution,...>."
        )
    spec, ep = candidates[0]
    key = (kind, spec.qualified_name)
    if key not in _loaded:
        try:
            _loaded[key] = ep.load()
        # Any failure inside a plugin's import is the plugin's; sys.exit() there must not end `fit` silently.
        except (SystemExit, Exception) as exc:
            failure = (
                f"called sys.exit({exc.code!r}) while being imported" if isinstance(exc, SystemExit)
                else f"failed to load: {type(exc).__name__}: {exc}"
            )
            raise PluginLoadError(
                f"{kind} plugin {short!r} from distribution {spec.distribution} {spec.version} "
                f"(entry point {spec.target!r}) {failure}. "
                f"Fix or reinstall {spec.distribution}, or exclude it with {PLUGINS_ENV}."
            ) from exc
    return _loaded[key]


def _unknown_message(kind: str, name: str) -> str:
    available = _names(kind)
    message = f"unknown {kind} {name!r}"
    hint = did_you_mean(repr(name.rpartition(":")[2]), [repr(a) for a in available])  # quoted, as the name is
    message += f"; {hint}" if hint else "."
    listed = ", ".join(available) if available else "none"
    message += f" Available {kind}s: {listed}."
    if not available:
        message += (
            f" No {kind} is registered at all: is resnet-lightning installed "
            f"(pip install -e .), and is {PLUGINS_ENV} set?"
        )
    return message + _hidden_hint(kind, name.rpartition(":")[2])


def _hidden_hint(kind: str, name: str) -> str:
    """What ``RESNET_LIGHTNING_PLUGINS`` hides, when it is set: the distribution providing ``name``, or how many."""
    allowed = _allowed_distributions()
    if allowed is None:
        return ""
    hidden = [_spec(kind, ep) for ep in entry_points(group=_GROUPS[kind])]
    hidden = [spec for spec in hidden if _normalize(spec.distribution) not in allowed]
    setting = f"{PLUGINS_ENV}={os.environ.get(PLUGINS_ENV, '').strip()}"
    providers = sorted({spec.distribution for spec in hidden if spec.name == name})
    if providers:
        return (
            f" {name!r} is installed (from {', '.join(providers)}) but hidden by {setting}; "
            f"unset {PLUGINS_ENV}, or add {providers[0]} to it"
        )
    if hidden:
        return f" ({setting} hides {len(hidden)} installed {kind} plugin(s) from other distributions; unset it to see them.)"
    return ""


def _register(kind: str, name: str | None, override: bool) -> Callable[[Any], Any]:
    def decorator(obj: Any) -> Any:
        key = name or getattr(obj, "__name__", None)
        if not key:
            raise ValueError(f"cannot infer a {kind} name for {obj!r}; pass name=...")
        if not override and (key in _discovered(kind) or key in _registered[kind]):
            raise DuplicatePluginError(
                f"{kind} {key!r} is already registered; pick another name or pass override=True"
            )
        target = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', key)}"
        _registered[kind][key] = (PluginSpec(key, kind, _IN_PROCESS, "", target), obj)
        return obj

    return decorator


def register_block(name: str | None = None, *, override: bool = False) -> Callable[[type], type]:
    """Register a block class in this process (for notebooks and tests).

    Packages should use the ``resnet_lightning.blocks`` entry point instead, so
    that the block is found in every process, DDP workers included.

    Args:
        name: Registry name; the class name when omitted.
        override: Replace an existing registration of the same name.
    """
    return _register("block", name, override)


def register_architecture(
    name: str | None = None, *, override: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an architecture builder in this process (for notebooks and tests).

    Args:
        name: Registry name; the function name when omitted.
        override: Replace an existing registration of the same name.
    """
    return _register("architecture", name, override)


def unregister(kind: Kind, name: str) -> None:
    """Remove an in-process registration (entry points cannot be removed)."""
    _registered[kind].pop(name, None)

