"""Holding back what is said while a command line is checked, so a user error is the only line.

Between parsing and the start of the work, Lightning logs its notices (the seed, the devices),
warnings are issued and the CLI says which run it chose. If the configuration turns out to be
wrong (a missing dataset, a checkpoint that does not fit), all of that described a run that
will not happen: the user should see the one error line. So those notices are held, in order,
and written out once the classes are built (or on a bug), or dropped on a user error.

Nothing is patched: Lightning's records are held by a filter on its own loggers' handlers
(``logging.Handler.addFilter``), warnings inside ``warnings.catch_warnings()``, and the CLI's
own lines through :func:`resnet_lightning.console.hold_lines`.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

from .. import console

# Lightning's loggers, each with its own stderr handler (set up when lightning is imported).
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


class HeldNotices:
    """Holds Lightning's log records, warnings and the CLI's own lines until :meth:`release` or :meth:`discard`."""

    def __init__(self) -> None:
        self._held: list[Callable[[], Any]] | None = []
        self._filters = [
            _HoldRecords(handler, self._held) for name in LIGHTNING_LOGGERS for handler in logging.getLogger(name).handlers
        ]
        for hold in self._filters:
            hold.handler.addFilter(hold)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.showwarning = self._hold_warning  # inside catch_warnings, which restores it
        console.hold_lines(self._hold_line)

    def _hold_warning(self, message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        self._held.append(lambda: warnings.showwarning(message, category, filename, lineno, file, line))

    def _hold_line(self, line: str) -> None:
        self._held.append(lambda: print(line, file=sys.stderr))

    def release(self) -> None:
        """Stop holding and write out what was held, in order (once)."""
        for write in self._stop():
            write()
        sys.stderr.flush()

    def discard(self) -> None:
        """Stop holding and drop what was held."""
        self._stop()

    def _stop(self) -> list[Callable[[], Any]]:
        if self._held is None:
            return []
        held, self._held = self._held, None
        console.hold_lines(None)
        self._warnings.__exit__(None, None, None)
        for hold in self._filters:
            hold.handler.removeFilter(hold)
        return held


class _HoldRecords(logging.Filter):
    """A handler's filter that keeps each record back, to be handled on release."""

    def __init__(self, handler: logging.Handler, held: list[Callable[[], Any]]) -> None:
        super().__init__()
        self.handler, self._held = handler, held

    def filter(self, record: logging.LogRecord) -> bool:
        self._held.append(lambda: self.handler.handle(record))
        return False
