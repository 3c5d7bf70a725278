"""The one way in: ``resnet-lightning`` and ``python -m resnet_lightning`` both start here.

:func:`cli_main` dispatches: the extra commands (:data:`COMMANDS`) go to their own module's
``main(argv)``, imported by name so that ``plugins`` runs without importing Lightning; every
other command (``fit``, ``validate``, ``test``, ``predict``) goes to the LightningCLI in
:mod:`resnet_lightning.cli.lightning`. It is also the one place where an error becomes a line:
a :class:`~resnet_lightning.errors.UserError`, raised anywhere and however wrapped, is printed
as ``resnet-lightning: error: ...`` with exit status 1 (2 for a usage error); anything else is
a bug and keeps its traceback (``RESNET_LIGHTNING_DEBUG=1``: user errors too).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

from ..console import error_line
from ..errors import debug_requested
from .commands import COMMANDS
from .user_errors import user_message

def cli_main(args: Sequence[str] | None = None, run: bool = True) -> Any:
    """Run one command line; ``args`` as a list lets tests drive the real CLI from Python.

    Args:
        args: Command-line arguments (``sys.argv[1:]`` when None).
        run: For ``fit``/``validate``/``test``/``predict``: run the subcommand (False: only
            parse and instantiate, and return the ``ResNetLightningCLI``).

    Returns:
        The ``ResNetLightningCLI`` of a Lightning command; None for an extra command.

    Raises:
        SystemExit: With the exit status, after printing a user error as one line (or when a
            command exits non-zero, such as ``plugins`` finding a plugin that fails to load).
    """
    argv = [str(arg) for arg in (sys.argv[1:] if args is None else args)]
    command = argv[0] if argv and argv[0] in COMMANDS else None
    try:
        if command is not None:
            module_name, function = COMMANDS[command][0].split(":")
            code = getattr(importlib.import_module(module_name), function)(argv[1:])
            if code:
                raise SystemExit(code)
            return None
        from .lightning import run_lightning_cli  # imports Lightning

        return run_lightning_cli(args, run)
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        message = None if debug_requested() else user_message(exc)
        if message is None:
            raise  # a bug: its traceback is what a maintainer needs
        text = message.text if message.about_usage or command is None else f"{command}: {message.text}"
        print(error_line(text), file=sys.stderr)
        raise SystemExit(message.exit_code) from None


def main() -> None:
    """The console script ``resnet-lightning`` (:func:`cli_main` without its return value)."""
    cli_main()
