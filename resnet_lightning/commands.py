"""The ``resnet-lightning`` console script: commands that need no Lightning run without importing it.

``resnet-lightning plugins`` is a health check run in CI and by hand whenever a name is
unknown; importing Lightning (and through it the whole LightningCLI stack) would take
longer than the check itself. This module dispatches it first and hands every other
command to :func:`resnet_lightning.cli.cli_main`, which imports Lightning.
:data:`EXTRA_COMMANDS` lists the commands beside LightningCLI's fit/validate/test/predict;
``cli.py`` reads it from here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# Commands beside LightningCLI's fit/validate/test/predict: name -> (module:function(argv), help).
EXTRA_COMMANDS = {
    "plugins": (
        "resnet_lightning.plugin_status:main",
        "list the installed blocks and architectures, each checked in its own process "
        "(--check: the full plugin contract)",
    ),
    "analyze": (
        "resnet_lightning.analysis.command:main",
        "lesion study, shattered gradients, degradation and gradient-flow plots (PNG + CSV/JSON)",
    ),
    "dashboard": (
        "resnet_lightning.tracking.dashboard:main",
        "save a W&B workspace laying out every metric the framework logs",
    ),
    "search": (
        "resnet_lightning.search.command:main",
        "architecture and hyperparameter search over the registry on Optuna (trials are ordinary fits)",
    ),
    "export": (
        "resnet_lightning.export:main",
        "export a trained checkpoint to ONNX or torch.export (.pt2), checked against the eager model",
    ),
}
# Run from here, before anything imports Lightning.
WITHOUT_LIGHTNING = ("plugins",)


def run_without_lightning(argv: Sequence[str]) -> int:
    """Run ``argv[0]`` (one of :data:`WITHOUT_LIGHTNING`) with one-line errors; the exit status."""
    from .cli_errors import UsageError, debug_requested, error_line, user_message
    from .registry import PluginError

    module_name, function = EXTRA_COMMANDS[argv[0]][0].split(":")
    try:
        return getattr(importlib.import_module(module_name), function)(list(argv[1:])) or 0
    except Exception as exc:
        message = None if debug_requested() else user_message(exc, (PluginError, OSError, ValueError))
        if message is None:
            raise
        print(error_line(message if isinstance(exc, UsageError) else f"{argv[0]}: {message}"), file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1


def main() -> None:
    """Console-script entry: ``resnet-lightning``."""
    argv = sys.argv[1:]
    if argv and argv[0] in WITHOUT_LIGHTNING:
        raise SystemExit(run_without_lightning(argv))
    from .cli import main as cli_main

    cli_main()
