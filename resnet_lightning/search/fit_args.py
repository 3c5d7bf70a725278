"""A trial's ``resnet-lightning fit`` command line, and the config it resolves to.

A trial is ``fit --config BASE... [fixed] [params]``: the search file's base
configs, then its ``fixed:`` options, then the trial's parameters, all as the
dotted ``--key=value`` arguments of the ordinary CLI (later ones win, as on any
command line). The same arguments, resolved by the CLI's own parser
(``--print_config``), are what ``best.yaml`` holds, so ``fit --config best.yaml``
retrains the trial as it ran, without the search's plumbing.

A list option is searched element by element: ``model.arch_kwargs.layers.0`` is
the first entry of ``model.arch_kwargs.layers``. A trial's elements, with those of a
``fixed:`` list of the same key for the elements not searched, become one argument,
``--model.arch_kwargs.layers=[2, 1, 3]``.
"""

from __future__ import annotations

import contextlib
import inspect
import io
from pathlib import Path
from typing import Any

import yaml

from ..registry import UnknownPluginError, get_architecture, get_block
from .config import SearchConfig
from .moasha import check_rungs
from .space import SearchConfigError, cli_args

REGISTRY_KEYS = {"model.block": get_block, "model.arch": get_architecture}
REGISTRY_LISTS = {"model.arch_kwargs.blocks": get_block}  # lists of registry names, searched element by element
STAGE_LISTS = ("layers", "widths", "blocks")  # the per-stage lists of model.arch_kwargs (resnet_stages)


def fit_args(search: SearchConfig, params: dict[str, Any]) -> list[str]:
    """``--config`` files, fixed options and the trial's parameters, in that order (list elements assembled)."""
    configs = [arg for path in search.configs for arg in ("--config", str(path))]
    lists = assemble_lists(search.fixed, params)
    fixed = {k: v for k, v in search.fixed.items() if k not in lists and element(k) is None}
    params = {k: v for k, v in params.items() if element(k) is None}
    return [*configs, *cli_args(fixed), *cli_args(params), *cli_args(lists)]


def shown(search: SearchConfig, params: dict[str, Any]) -> str:
    """A trial's parameters for its console line: ``model.arch_kwargs.layers=[3, 1, 2] model.optimizer.init_args.lr=0.1``.

    A list searched element by element is shown whole, as its fit gets it.
    """
    lists, parts = assemble_lists(search.fixed, params), []
    for key, value in params.items():
        base = _list_of(key)
        if not base:
            parts.append(f"{key}={value}")
        elif base in lists:
            parts.append(f"{base}=[{', '.join(map(str, lists.pop(base)))}]")
    return " ".join(parts)


def element(key: str) -> tuple[str, int] | None:
    """``("model.arch_kwargs.layers", 0)`` for ``model.arch_kwargs.layers.0``; None for a key that is not a list element."""
    base, _, last = key.rpartition(".")
    return (base, int(last)) if base and last.isdigit() else None


def _list_of(key: str) -> str:
    """The list an element key belongs to (``model.arch_kwargs.blocks.1`` -> ``model.arch_kwargs.blocks``), else ""."""
    found = element(key)
    return found[0] if found else ""


def assemble_lists(fixed: dict[str, Any], params: dict[str, Any]) -> dict[str, list[Any]]:
    """Every list some element of which is searched (or fixed), whole: its ``fixed:`` list overlaid with the elements.

    Raises:
        SearchConfigError: An element is missing; the message names it and the fix.
    """
    given: dict[str, dict[int, Any]] = {}
    for key, value in {**fixed, **params}.items():
        if (found := element(key)) is not None:
            given.setdefault(found[0], {})[found[1]] = value
    lists = {}
    for base, elements in given.items():
        whole = fixed.get(base, [])
        if not isinstance(whole, list):
            raise SearchConfigError(f"fixed: {base}: {whole!r} is not a list; its elements are searched as {base}.0, {base}.1, ...")
        length = max(len(whole), max(elements) + 1)
        missing = [i for i in range(length) if i not in elements and i >= len(whole)]
        if missing:
            have = ", ".join(f"{base}.{i}" for i in sorted(elements))
            raise SearchConfigError(
                f"{base}.{missing[0]} is missing: space: has {have}, and no fixed: {base} list gives the others; add "
                f"{base}.{missing[0]} to space:, or give the whole list in fixed:, e.g. {base}: {[1] * length}"
            )
        lists[base] = [elements.get(i, whole[i] if i < len(whole) else None) for i in range(length)]
    return lists


def resolved_config(args: list[str]) -> str:
    """The whole ``fit`` config that ``args`` give, as YAML, from the CLI's own parser.

    Raises:
        SearchConfigError: The CLI refuses the arguments; the message is its error line.
    """
    from ..cli import cli_main  # late: imports Lightning

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli_main(["fit", *args, "--print_config"])
        except SystemExit as stop:
            if stop.code not in (0, None):
                raise SearchConfigError(_error_line(err.getvalue()) or f"fit refused {' '.join(args)}") from None
    return out.getvalue()


def _error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
    return errors[-1] if errors else (lines[-1] if lines else "")


def check_search(search: SearchConfig) -> None:
    """Refuse a search whose trials could never run, before any trial starts.

    Every name in a ``model.block`` / ``model.arch`` dimension must be in the
    registry (plugins included), and the base configs with the fixed options and
    one value of every dimension must parse as a ``fit`` command line (this
    catches a misspelt dotted key). A list searched element by element must be
    whole in every trial, and the per-stage lists as long as each other
    (:func:`check_stage_lengths`). A value that parses but cannot train (a depth
    the block does not fit) is left to its trial, which fails with the reason.

    Raises:
        SearchConfigError: Naming the bad key or value and what to do (an unknown block or
            architecture with the available ones).
        PluginError: A plugin that fails to load.
    """
    for key, dist in search.space.items():
        lookup = REGISTRY_KEYS.get(key) or REGISTRY_LISTS.get(_list_of(key))
        for name in getattr(dist, "choices", ()) if lookup else ():
            if name is not None:
                try:
                    lookup(name)
                except UnknownPluginError as err:  # a name misspelt in the file: its mistake (exit 2), as every other
                    raise SearchConfigError(f"space.{key}: {err}") from None
    applies = getattr(search.space, "applies", lambda key, values: True)
    probe: dict[str, Any] = {}
    for key, dist in search.space.items():
        if applies(key, probe):
            probe[key] = getattr(dist, "choices", [getattr(dist, "low", None)])[0]
    # A list not wholly given is one line naming the missing element; a conditional element may be left out
    # of a trial, so its list needs a fixed: one to fall back on.
    assemble_lists(search.fixed, {k: 0 for k in search.space if k not in getattr(search.space, "conditions", {})})
    try:
        resolved = resolved_config(fit_args(search, probe))
    except SearchConfigError as err:
        files = ", ".join(str(Path(p)) for p in search.configs) or "no base configs"
        raise SearchConfigError(
            f"{search.path}: a trial's fit command line is refused: {err} (base configs: {files}); space:, fixed: and "
            "configs: take what `resnet-lightning fit --help` lists, as dotted keys like model.arch_kwargs.depth"
        ) from None
    check_stage_lengths(resolved, search)
    check_rungs(search.pruner, resolved, str(search.path))  # MO-ASHA's rungs against trainer.max_epochs


def check_stage_lengths(resolved: str, search: SearchConfig) -> None:
    """The per-stage lists (``layers``, ``widths``, ``blocks``) of the resolved ``model.arch_kwargs`` are equally long.

    A list the config does not give is the architecture's default (``resnet_stages``
    has three stages by default), so a four-stage ``layers`` needs four ``widths`` too.

    Raises:
        SearchConfigError: Naming each list's length, where it comes from, and the fix.
    """
    model = (yaml.safe_load(resolved) or {}).get("model") or {}
    kwargs, arch = model.get("arch_kwargs") or {}, model.get("arch")
    try:
        defaults = inspect.signature(get_architecture(arch)).parameters if isinstance(arch, str) else {}
    except (TypeError, ValueError):  # a builder without a signature: only what the config gives
        defaults = {}
    lengths = {}
    for name in STAGE_LISTS:
        if isinstance(kwargs.get(name), list):
            key = f"model.arch_kwargs.{name}"
            searched = any(_list_of(k) == key for k in search.space)
            lengths[name] = (len(kwargs[name]), "space:" if searched else "fixed:/configs:")
        elif name in defaults and isinstance(defaults[name].default, (list, tuple)):
            lengths[name] = (len(defaults[name].default), f"{arch}'s default")
    if len({n for n, _ in lengths.values()}) > 1:
        given = ", ".join(f"{name} {n} long ({where})" for name, (n, where) in lengths.items())
        raise SearchConfigError(
            f"model.arch_kwargs: the per-stage lists differ in length: {given}; give every list one entry per stage"
        )
