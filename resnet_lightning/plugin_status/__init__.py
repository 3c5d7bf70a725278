"""Which blocks and architectures are installed, who provides them, and whether each works.

``resnet-lightning plugins`` prints :func:`format_plugin_table` of
:func:`plugin_statuses`, in the manner of the ``plugins:`` line pytest prints
before a run: it is the first thing to look at when a name is unknown or a
plugin misbehaves. Unlike :func:`resnet_lightning.list_plugins`, which reads
metadata only, this imports every plugin (loading a plugin runs its code;
``RESNET_LIGHTNING_PLUGINS`` restricts which are discovered).

Each distribution's plugins are imported and checked in a child process with a
time limit per plugin, so a plugin that calls ``sys.exit`` or ``os._exit``,
hangs, or crashes the interpreter is reported on its own line ("exited 3",
"timed out after 20 s") and every other plugin is still checked. Besides
importing, a block is built and run on a tiny input (the shape contract, as
:class:`~resnet_lightning.models.ResNet` checks it), and an architecture is built
(without initialising its weights) and must return an ``nn.Module`` that maps two
16x16 images to logits of the right shape. ``--check`` runs the
full contract checker of :mod:`resnet_lightning.testing` instead.

Neither this module nor the command imports Lightning.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from .cli_errors import OneLineArgumentParser
from .registry import (
    PLUGINS_ENV,
    DuplicatePluginError,
    Kind,
    PluginError,
    PluginSpec,
    UnknownPluginError,
    get_architecture,
    get_block,
    list_plugins,
)

__all__ = ["DEFAULT_TIMEOUT", "PluginStatus", "format_plugin_table", "main", "plugin_statuses"]

_IN_PROCESS = "<registered in process>"
DEFAULT_TIMEOUT = 20.0  # seconds per plugin: importing torchvision on a busy CI machine can take 10
CHECK_TIMEOUT = 300.0  # per plugin with --check: the contract checker builds each network several times
NO_STRUCTURE = "ok (no branch/shortcut/merge: the residual analyses skip it)"


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
    providers = Counter((s.kind, s.name) for s in specs if s.distribution != _IN_PROCESS)
    every = list_plugins(kind)
    results = _check_isolated(specs, timeout, check, jobs)
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
            import difflib

            close = difflib.get_close_matches(short, available, n=1)
            raise UnknownPluginError(
                f"unknown {' or '.join(kinds)} {name!r}" + (f"; did you mean {close[0]!r}?" if close else ";")
                + f" run `resnet-lightning plugins` to list the {len(available)} installed ones"
            )
        chosen += [s for s in matches if s not in chosen]
    return chosen


# --- the parent: one child per distribution, a time limit per plugin -------------------------


def _context() -> Any:
    # fork: a child starts with torch (and the built-ins) already imported by the parent, so
    # it pays only for the plugin's own import. Elsewhere (Windows, macOS' default) spawn.
    if "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _check_isolated(specs: list[PluginSpec], timeout: float, check: bool, jobs: int | None) -> list[str]:
    results: list[str | None] = [None] * len(specs)
    in_process = [i for i, s in enumerate(specs) if s.distribution == _IN_PROCESS]
    for i in in_process:  # objects registered in this process exist only here
        results[i] = _status(specs[i], check)
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        if spec.distribution != _IN_PROCESS:
            groups.setdefault(spec.distribution, []).append(i)
    if not groups:
        return [r or "" for r in results]
    context = _context()
    if context.get_start_method() == "fork":
        # Imported once here rather than once per child; nothing here starts a thread, so forking is safe.
        import resnet_lightning.models.builders  # noqa: F401
    pending = [indices for _, indices in sorted(groups.items())]
    # The core's own 30-odd built-ins in chunks, so they share the cores with the plugins.
    pending = [chunk for indices in pending for chunk in _chunks(indices, 8)]
    jobs = max(1, jobs or os.cpu_count() or 1)
    running: list[_Child] = []
    while pending or running:
        while pending and len(running) < jobs:
            running.append(_Child(context, pending.pop(0), specs, check))
        now = time.monotonic()
        deadline = min(child.deadline(timeout) for child in running)
        ready = wait([c.conn for c in running] + [c.process.sentinel for c in running], max(0.0, deadline - now))
        for child in list(running):
            child.drain(results)
            if child.finished():
                child.process.join(5)
                running.remove(child)
                continue
            message = None
            if not child.process.is_alive():
                child.drain(results)
                if child.finished():
                    child.process.join(5)
                    running.remove(child)
                    continue
                message = f"error: {_exit_reason(child.process.exitcode)} while {child.phase}"
            elif time.monotonic() >= child.deadline(timeout):
                child.process.kill()
                message = f"error: timed out after {timeout:g} s while {child.phase}"
            if message is not None:
                child.process.join()
                running.remove(child)
                current = child.current()
                results[current] = message
                rest = [i for i in child.indices if results[i] is None]
                if rest:  # the others of the distribution, in a fresh process
                    pending.insert(0, rest)
        del ready
    return [r or "error: not checked" for r in results]


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[k : k + size] for k in range(0, len(indices), size)]


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            import signal

            return f"killed by {signal.Signals(-code).name}"
    return f"exited {code}"


class _Child:
    """One child process checking some plugins of one distribution, in order."""

    def __init__(self, context: Any, indices: list[int], specs: list[PluginSpec], check: bool) -> None:
        self.indices = indices
        self.conn, child_conn = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_worker, args=([specs[i] for i in indices], check, child_conn), daemon=True
        )
        self.process.start()
        child_conn.close()
        self.position = 0  # index into self.indices of the plugin being checked
        self.phase = "loading"  # then "being checked" (built and run), once its import returned
        self.started = time.monotonic()

    def drain(self, results: list[str | None]) -> None:
        while True:
            try:
                if not self.conn.poll():
                    return
                position, status = self.conn.recv()
            except (EOFError, OSError):
                return
            if position == "start":
                self.position, self.started, self.phase = status, time.monotonic(), "loading"
            elif position == "loaded":
                self.phase = "being checked"
            else:
                results[self.indices[position]] = status
                self.position = position + 1

    def finished(self) -> bool:
        return self.position >= len(self.indices)

    def current(self) -> int:
        return self.indices[min(self.position, len(self.indices) - 1)]

    def deadline(self, timeout: float) -> float:
        return self.started + timeout


# --- the child ---------------------------------------------------------------------------


def _worker(specs: list[PluginSpec], check: bool, conn: Any) -> None:
    # The table goes to the parent's stdout: whatever a plugin prints goes to stderr.
    sys.stdout = sys.stderr
    warnings.simplefilter("ignore")  # a plugin's warnings are not its status
    import torch

    torch.set_num_threads(1)  # tiny tensors; the other children share the cores
    for position, spec in enumerate(specs):
        conn.send(("start", position))
        conn.send((position, _status(spec, check, loaded=lambda: conn.send(("loaded", position)))))
    conn.close()


def _status(spec: PluginSpec, check: bool, loaded: Any = None) -> str:
    # By "distribution:name", so a name registered twice still loads each provider's own.
    name = spec.name if spec.distribution == _IN_PROCESS else spec.qualified_name
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
    from .models.residual import ResidualStructureWarning
    from .testing import PluginContractError, check_architecture, check_block

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResidualStructureWarning)
        try:
            (check_block if spec.kind == "block" else check_architecture)(name)
        except PluginContractError as exc:
            return f"error: breaks the {spec.kind} contract: {exc}"
    if any(issubclass(w.category, ResidualStructureWarning) for w in caught):
        return NO_STRUCTURE
    return "ok"


@contextlib.contextmanager
def _no_initialisation() -> Any:
    """``torch.nn.init``'s in-place initialisers as no-ops, for a build whose values nobody reads.

    Parameters then keep ``torch.empty``'s untouched memory: building resnet152 or a
    1202-layer CIFAR net costs its allocation, not seconds of random-number generation.
    (The ``meta`` device would allocate nothing, but its batch norm goes through
    decompositions that import ``torch._dynamo``, a second or more per child process.)
    """
    from torch.nn import init

    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, function in saved.items():
            setattr(init, n, function)


def _block_status(cls: type, name: str) -> str:
    """Build the block for two shapes a network gives it and run it, as ResNet does when it builds one."""
    from torch import nn

    from .models.residual import has_structure
    from .models.resnet import BlockContractError, _check_block

    expansion = getattr(cls, "expansion", 1)
    if not isinstance(expansion, int) or isinstance(expansion, bool) or expansion < 1:
        return f"error: breaks the block contract: expansion={expansion!r}; expected a positive int"
    for in_channels, out_channels, stride in ((16, 16 * expansion, 1), (16 * expansion, 32 * expansion, 2)):
        options = dict(norm_layer=nn.BatchNorm2d, drop_path_rate=0.0, shortcut="B")
        try:
            block = cls(in_channels, out_channels, stride, **options)
            _check_block(block, name, in_channels, out_channels, stride)
        except BlockContractError as exc:
            return f"error: {exc}"  # "block 'name' breaks the block contract: ..." or "... failed on an input ..."
        except Exception as exc:
            return (
                f"error: breaks the block contract: {cls.__name__}({in_channels}, {out_channels}, stride={stride}, "
                f"norm_layer=BatchNorm2d, drop_path_rate=0.0, shortcut='B') raised {type(exc).__name__}: {exc}"
            )
    return "ok" if has_structure(block) else NO_STRUCTURE


def _architecture_status(builder: Any) -> str:
    """Build the network (uninitialised) and run a batch of two small images through it."""
    import torch
    from torch import nn

    from .models.resnet import BlockContractError

    size, num_classes = 16, 3
    try:
        with _no_initialisation():
            model = builder(num_classes=num_classes, in_channels=3)
    except BlockContractError as exc:
        return f"error: {exc}"
    except Exception as exc:
        return f"error: fails to build with num_classes=3, in_channels=3: {type(exc).__name__}: {exc}"
    if not isinstance(model, nn.Module):
        return f"error: returns {type(model).__name__}, not nn.Module"
    x = torch.zeros(2, 3, size, size)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:
        return f"error: raises {type(exc).__name__} on an input of shape {list(x.shape)}: {exc}"
    got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != [2, num_classes]:
        return f"error: maps an input of shape {list(x.shape)} to {got}; expected logits of shape [2, {num_classes}]"
    return "ok"


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
    parser = OneLineArgumentParser(
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
