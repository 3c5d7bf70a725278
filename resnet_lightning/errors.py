"""One error policy: a :class:`UserError` is a problem the user can fix; anything else is a bug.

Every error the user can fix (a bad option, a missing file, an unknown block, a damaged
checkpoint, a full disk) derives from :class:`UserError`, wherever it is raised. The
command line catches it once, at the top (:mod:`resnet_lightning.cli`), and prints it as
one line, ``resnet-lightning: error: <what>; <expected>; <what to do>``. Every other
exception is a bug and keeps its traceback. ``RESNET_LIGHTNING_DEBUG=1`` shows the
traceback of user errors too.

This module imports nothing from the package, so any module may raise from it.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Iterable
from typing import NoReturn

DEBUG_ENV = "RESNET_LIGHTNING_DEBUG"


class UserError(Exception):
    """A problem the user can fix, phrased as one line: what is wrong, what was expected, what to do.

    Subclasses often derive from a builtin too (``ValueError``, ``OSError``, ``LookupError``)
    so code that catches those keeps working.
    """

    exit_code = 1


class UsageError(UserError):
    """A mistake in the command line or a config file (exit status 2, as argparse uses)."""

    exit_code = 2


class CommandParser(argparse.ArgumentParser):
    """The parser of every extra command (``plugins``, ``search``, ``export``, ...): a mistake raises
    :class:`UsageError` (one line, exit 2) instead of printing the usage and exiting.

    ``prog`` is the command as typed (``"resnet-lightning search"``); the message names it
    and points at its ``--help``.
    """

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        command = self.prog.removeprefix("resnet-lightning").strip()
        raise UsageError(one_line(f"{command}: {message}" if command else message, f"see `{self.prog} --help`"))


def debug_requested() -> bool:
    """Whether ``RESNET_LIGHTNING_DEBUG`` asks for tracebacks instead of one-line errors."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"did you mean x?"`` for the closest of ``choices`` to ``name``, or ``""``.

    Compares as given first, then without case (``"sgd"`` finds ``"SGD"``).
    """
    choices = [str(choice) for choice in choices]
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    if not close:
        lowered = {choice.lower(): choice for choice in choices}
        close = [lowered[c] for c in difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)]
    return f"did you mean {close[0]}?" if close else ""


def one_line(*parts: str) -> str:
    """The message's parts that are not empty, as one line: ``"what; did you mean x? Known: ...; what to do"``."""
    line = ""
    for part in (" ".join(str(part).split()) for part in parts):
        if not part:
            continue
        if not line:
            line = part
        elif line.endswith("?"):  # "did you mean x? Known: ..."
            line += " " + part[0].upper() + part[1:]
        else:
            line += "; " + part
    return line
