"""Which blocks and architectures are installed, who provides them, and whether each works.

``resnet-lightning plugins`` prints :func:`format_plugin_table` of
:func:`plugin_statuses`, in the manner of the ``plugins:`` line pytest prints
before a run: it is the first thing to look at when a name is unknown or a
plugin misbehaves. Unlike :func:`resnet_lightning.list_plugins`, which reads
metadata only, this imports every plugin (loading a plugin runs its code;
``RESNET_LIGHTNING_PLUGINS`` restricts which are discovered).

Each distribution's plugins are imported and checked in a child process with a
time limit per plugin (:mod:`.isolation`), so a plugin that calls ``sys.exit`` or
``os._exit``, hangs, or crashes the interpreter is reported on its own line
("exited 3", "timed out after 20 s") and every other plugin is still checked.
Besides importing, a block is built and run on a tiny input and an architecture
is built and run on two 16x16 images, through the checks of
:mod:`resnet_lightning.testing` that :func:`~resnet_lightning.create_model` runs
(:mod:`.checks`); ``--check`` runs the full contract checker instead.

Neither this module nor the command imports Lightning.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import CommandParser, did_you_mean
from ..registry import PLUGINS_ENV, Kind, PluginSpec, UnknownPluginError, list_plugins
from .checks import IN_PROCESS, NO_STRUCTURE
from .isolation import check_isolated

__all__ = ["DEFAULT_TIMEOUT", "NO_STRUCTURE", "PluginStatus", "format_plugin_table", "main", "plugin_statuses"]

DEFAULT_TIMEOUT = 20.0  # seconds per plugin: importing torchvision on a busy CI machine can take 10
CHECK_TIMEOUT = 300.0  # per plugin with --check: the contract checker builds each network several times


@dataclass(frozen=True)
class PluginStatus:
    """One registered block or architecture and whether it loads.

    Attributes:
        name: The registry name.
        kind: ``"block"`` or ``"architecture"``.
        distribution: The installed distribution providing it.
        version: That distribution's version.
        target: The entry point's ``module:attribute``.
        status: ``"ok"`` (or ``"ok (<note>)"``), or ``"error: <reason>"``.
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
        return self.status == "ok" or self.status.startswith("ok (")


def plugin_statuses(
    kind: Kind | None = None,
    *,
    names: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = False,
    jobs: int | None = None,
) -> list[PluginStatus]:
    """Every registered block and/or architecture, imported and checked in isolation.

    A name that two distributions register is reported as an error on both (it
    cannot be used by its plain name), and so is a plugin whose import fails,
    exits or hangs, whose entry point is not a block class (an ``nn.Module``
    subclass) or an architecture (a callable returning an ``nn.Module``), or
    that breaks the block contract.

    Args:
        kind: ``"block"``, ``"architecture"``, or None for both.
        names: Only these plugins (``name`` or ``distribution:name``); unknown ones raise
            :class:`~resnet_lightning.registry.UnknownPluginError`.
        timeout: Seconds each plugin may take to load and be checked.
        check: Run :func:`~resnet_lightning.testing.check_block` /
            :func:`~resnet_lightning.testing.check_architecture` (the full contract) on each.
        jobs: Child processes at once (default: the CPU count).
    """
    specs = list_plugins(kind)
    if names:
        specs = _select(specs, names, kind)
    providers = Counter((s.kind, s.name) for s in specs if s.distribution != IN_PROCESS)
    every = list_plugins(kind)
    results = check_isolated(specs, timeout, check, jobs)
    statuses = []
    for spec, status in zip(specs, results):
        others = [s.distribution for s in every if (s.kind, s.name) == (spec.kind, spec.name) and s != spec]
        if status.startswith("ok") and (providers[(spec.kind, spec.name)] > 1 or (names and others)):
            status = (
                f"error: {spec.name!r} is also registered by {', '.join(others)}; "
                f"use {spec.qualified_name!r} or uninstall one"
            )
        statuses.append(PluginStatus(spec.name, spec.kind, spec.distribution, spec.version, spec.target, status))
    return statuses


def _select(specs: list[PluginSpec], names: Sequence[str], kind: Kind | None) -> list[PluginSpec]:
    chosen = []
    for name in names:
        distribution, _, short = name.rpartition(":")
        matches = [s for s in specs if s.name == short and (not distribution or s.distribution == distribution)]
        if not matches:
            kinds = [kind] if kind else ["block", "architecture"]
            available = sorted({s.name for s in specs})
            hint = did_you_mean(repr(short), [repr(a) for a in available])  # quoted, as the name is
            raise UnknownPluginError(
                f"unknown {' or '.join(kinds)} {name!r}" + (f"; {hint}" if hint else ";")
                + f" run `resnet-lightning plugins` to list the {len(available)} installed ones"
            )
        chosen += [s for s in matches if s not in chosen]
    return chosen


def format_plugin_table(statuses: Iterable[PluginStatus], *, checked: bool = False) -> str:
    """A readable table of :func:`plugin_statuses`, one section per kind.

    Ends with a pytest-style ``plugins:`` line naming each distribution and
    version, and a count of the plugins that failed to load.

    Args:
        statuses: What :func:`plugin_statuses` returned.
        checked: The statuses come from the full contract checker (``check=True``):
            the last line says so.
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
    if checked:
        lines.append(
            f"{errors} of {len(statuses)} failed the plugin contract check" if errors
            else f"all {len(statuses)} load and keep the plugin contract (checked with resnet_lightning.testing)"
        )
    else:
        lines.append(f"{errors} of {len(statuses)} failed" if errors else f"all {len(statuses)} load")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``resnet-lightning plugins [--kind block|architecture] [--timeout S] [--check [NAME ...]]``.

    Returns:
        1 when a plugin fails to load or breaks its contract (so CI can run it as a health check), else 0.
    """
    parser = CommandParser(
        prog="resnet-lightning plugins",
        description=(
            f"List the installed blocks and architectures and whether each loads and keeps the contract, each "
            f"checked in a child process with a time limit ({PLUGINS_ENV} restricts them)."
        ),
    )
    parser.add_argument("--kind", choices=("block", "architecture"), help="only this kind")
    parser.add_argument(
        "--check", nargs="*", metavar="NAME", default=None,
        help="run the full contract checker (resnet_lightning.testing) on these plugins (all when none are named)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None,
        help=f"seconds each plugin may take (default {DEFAULT_TIMEOUT:g}, {CHECK_TIMEOUT:g} with --check)",
    )
    args = parser.parse_args(argv)
    check = args.check is not None
    timeout = args.timeout if args.timeout is not None else CHECK_TIMEOUT if check else DEFAULT_TIMEOUT
    if not timeout > 0 or math.isinf(timeout):
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    statuses = plugin_statuses(args.kind, names=args.check or None, timeout=timeout, check=check)
    print(format_plugin_table(statuses, checked=check))
    return 0 if all(s.ok for s in statuses) else 1
