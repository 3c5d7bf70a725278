"""A trial's ``resnet-lightning fit`` command line, and the config it resolves to.

A trial is ``fit --config BASE... [fixed] [params]``: the search file's base
configs, then its ``fixed:`` options, then the trial's parameters, all as the
dotted ``--key=value`` arguments of the ordinary CLI (later ones win, as on any
command line). The same arguments, resolved by the CLI's own parser
(``--print_config``), are what ``best.yaml`` holds, so ``fit --config best.yaml``
retrains the trial as it ran, without the search's plumbing.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from ..registry import get_architecture, get_block
from .config import SearchConfig
from .space import SearchConfigError, cli_args

REGISTRY_KEYS = {"model.block": get_block, "model.arch": get_architecture}


def fit_args(search: SearchConfig, params: dict[str, Any]) -> list[str]:
    """``--config`` files, fixed options and the trial's parameters, in that order."""
    configs = [arg for path in search.configs for arg in ("--config", str(path))]
    return [*configs, *cli_args(search.fixed), *cli_args(params)]


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
    catches a misspelt dotted key). A value that parses but cannot train (a depth
    the block does not fit) is left to its trial, which fails with the reason.

    Raises:
        SearchConfigError: Naming the bad key or value and what to do.
        PluginError: An unknown block or architecture, with the available ones.
    """
    for key, lookup in REGISTRY_KEYS.items():
        dist = search.space.get(key)
        for name in getattr(dist, "choices", ()):
            if name is not None:
                lookup(name)
    probe = {key: getattr(dist, "choices", [getattr(dist, "low", None)])[0] for key, dist in search.space.items()}
    try:
        resolved_config(fit_args(search, probe))
    except SearchConfigError as err:
        files = ", ".join(str(Path(p)) for p in search.configs) or "no base configs"
        raise SearchConfigError(
            f"{search.path}: a trial's fit command line is refused: {err} (base configs: {files}); space:, fixed: and "
            "configs: take what `resnet-lightning fit --help` lists, as dotted keys like model.arch_kwargs.depth"
        ) from None
