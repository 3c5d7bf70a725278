"""What the program tells the user: one line per fact on stderr, said once (by rank zero).

Imports nothing from the package (and not Lightning), so any module may say something
without an import cycle, and ``resnet-lightning plugins`` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

PROG = "resnet-lightning"
# The variables Lightning's ``_get_rank`` reads (lightning.fabric.utilities.rank_zero), in its order;
# read here so that saying something never imports Lightning.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def rank() -> int:
    """This process's rank in a distributed launch (0 when there is none)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


_sink: Callable[[str], None] | None = None  # where lines go while held (see hold_lines)


def tell(message: str) -> None:
    """Print ``resnet-lightning: <message>`` to stderr, once (on rank zero)."""
    if rank() != 0:
        return
    if _sink is not None:
        _sink(line(message))
    else:
        print(line(message), file=sys.stderr)


def line(message: str) -> str:
    """``resnet-lightning: <message>``: what :func:`tell` prints, for code that writes it another way (through a progress bar)."""
    return f"{PROG}: {message}"


def hold_lines(sink: Callable[[str], None] | None) -> None:
    """Send what :func:`tell` says to ``sink`` instead of stderr (None: to stderr again).

    The CLI holds what is said while it checks a command line, so that a user error is the
    only line printed (:class:`resnet_lightning.cli.held_notices.HeldNotices`).
    """
    global _sink
    _sink = sink


def error_line(message: str) -> str:
    """``resnet-lightning: error: <message>`` with the message's whitespace, newlines included, collapsed."""
    return f"{PROG}: error: {' '.join(str(message).split())}"
