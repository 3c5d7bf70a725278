"""Which blocks and architectures are installed, who provides them, and whether each loads.

``resnet-lightning plugins`` prints :func:`format_plugin_table` of
:func:`plugin_statuses`, in the manner of the ``plugins:`` line pytest prints
before a run: it is the first thing to look at when a name is unknown or a
plugin misbehaves. Unlike :func:`resnet_lightning.list_plugins`, which reads
metadata only, this imports every plugin (loading a plugin runs its code;
``RESNET_LIGHTNING_PLUGINS`` restricts which are discovered).
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from .registry import (
    PLUGINS_ENV,
    DuplicatePluginError,
    Kind,
    PluginError,
    PluginSpec,
    get_architecture,
    get_block,
    list_plugins,
)

__all__ = ["PluginStatus", "format_plugin_table", "main", "plugin_statuses"]

_IN_PROCESS = "<registered in process>"


@dataclass(frozen=True)
class PluginStatus:
    """One registered block or architecture and whether it loads.

    Attributes:
        name: The registry name.
        kind: ``"block"`` or ``"architecture"``.
        distribution: The installed distribution providing it.
        version: That distribution's version.
        target: The entry point's ``module:attribute``.
        status: ``"ok"``, or ``"error: <reason>"``.
    """

    name: str
    kind: str
    distribution: str
    version: str
    target: str
    status: str

    @property
    def ok(self) -> bool:
        """True when the plugin loads and is usable by its plain name."""
        return self.status == "ok"


def plugin_statuses(kind: Kind | None = None) -> list[PluginStatus]:
    """Every registered block and/or architecture, imported to see whether it loads.

    A name that two distributions register is reported as an error on both (it
    cannot be used by its plain name), and so is a plugin whose import fails or
    whose entry point is not a block class (an ``nn.Module`` subclass) or an
    architecture (a callable).

    Args:
        kind: ``"block"``, ``"architecture"``, or None for both.
    """
    specs = list_plugins(kind)
    providers = Counter((s.kind, s.name) for s in specs if s.distribution != _IN_PROCESS)
    statuses = []
    for spec in specs:
        others = [s.distribution for s in specs if (s.kind, s.name) == (spec.kind, spec.name) and s is not spec]
        status = _load_status(spec)
        if status == "ok" and providers[(spec.kind, spec.name)] > 1:
            status = (
                f"error: {spec.name!r} is also registered by {', '.join(others)}; "
                f"use {spec.qualified_name!r} or uninstall one"
            )
        statuses.append(PluginStatus(spec.name, spec.kind, spec.distribution, spec.version, spec.target, status))
    return statuses


def _load_status(spec: PluginSpec) -> str:
    # By "distribution:name", so a name registered twice still loads each provider's own.
    name = spec.name if spec.distribution == _IN_PROCESS else spec.qualified_name
    load = get_block if spec.kind == "block" else get_architecture
    try:
        obj = load(name)
    except DuplicatePluginError:  # two entry points of one distribution: still a duplicate
        return f"error: {spec.name!r} is registered twice by {spec.distribution}"
    except PluginError as exc:
        cause = exc.__cause__ or exc
        return f"error: {type(cause).__name__}: {cause}"
    what = f"{type(obj).__name__} {getattr(obj, '__name__', None) or repr(obj)}"  # "function net", "int 3"
    if spec.kind == "block" and not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        return f"error: {spec.target} is {what}, not an nn.Module subclass"
    if spec.kind == "architecture" and not callable(obj):
        return f"error: {spec.target} is {what}, not a callable"
    return "ok"


def format_plugin_table(statuses: Iterable[PluginStatus]) -> str:
    """A readable table of :func:`plugin_statuses`, one section per kind.

    Ends with a pytest-style ``plugins:`` line naming each distribution and
    version, and a count of the plugins that failed to load.
    """
    statuses = list(statuses)
    columns = ("name", "distribution", "version", "target", "status")
    every_row = [(s.name, s.distribution, s.version, s.target, s.status) for s in statuses]
    widths = [max(len(c), *(len(r[i]) for r in every_row)) for i, c in enumerate(columns[:-1])]  # sections align
    lines = []
    for kind in ("block", "architecture"):
        rows = [row for row, s in zip(every_row, statuses) if s.kind == kind]
        if not rows:
            continue
        lines.append(f"{kind}s ({len(rows)}):")
        for row in [columns, *rows]:
            cells = [cell.ljust(width) for cell, width in zip(row, widths)]
            lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
        lines.append("")
    distributions = sorted({(s.distribution, s.version) for s in statuses})
    lines.append("plugins: " + (", ".join(f"{d}-{v}" if v else d for d, v in distributions) or "none"))
    restriction = os.environ.get(PLUGINS_ENV, "").strip()
    if restriction:
        lines.append(f"{PLUGINS_ENV}={restriction}")
    errors = sum(not s.ok for s in statuses)
    lines.append(f"{errors} of {len(statuses)} failed to load" if errors else f"all {len(statuses)} load")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``resnet-lightning plugins [--kind block|architecture]``: print the table.

    Returns:
        1 when a plugin fails to load (so CI can run it as a health check), else 0.
    """
    parser = argparse.ArgumentParser(
        prog="resnet-lightning plugins",
        description=f"List the installed blocks and architectures and whether each loads ({PLUGINS_ENV} restricts them).",
    )
    parser.add_argument("--kind", choices=("block", "architecture"), help="only this kind")
    args = parser.parse_args(argv)
    statuses = plugin_statuses(args.kind)
    print(format_plugin_table(statuses))
    return 0 if all(s.ok for s in statuses) else 1
