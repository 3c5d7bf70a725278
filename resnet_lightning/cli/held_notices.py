"""What a command says: Lightning's notices and library deprecations off by default
(:class:`QuietConsole`), and what is said while a command line is checked held back, so a user
error is the only line (:class:`HeldNotices`).

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

from typing_extensions import Self

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


class QuietConsole:
    """What a command prints, for the command's duration only: Lightning's notices and
    third-party deprecations off (unless ``verbose``), each warning once and without a file path.

    - Lightning's loggers are set to WARNING, so its tips, device banners, "Seed set to" and
      the summary table (INFO records) are not printed; warnings and errors still are, but for
      "No seed found, seed set to 0", the same notice as a warning.
    - Inside ``warnings.catch_warnings()``: ``DeprecationWarning`` and ``FutureWarning`` raised
      from a module that is not ours are ignored (a library warning about its own internals
      is for its maintainers, not for our user); every other warning is printed once per
      message as ``resnet-lightning: warning: <message>``, naming the package it came from
      when it is not ours (``(from lightning)``).

    With ``verbose`` (``--verbose`` or ``RESNET_LIGHTNING_DEBUG=1``) nothing is dropped and
    warnings print as Python prints them. Levels, filters and ``showwarning`` are restored on exit.
    """

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self._levels: dict[str, int] = {}
        self._warnings = warnings.catch_warnings()
        self._seen: set[tuple[type, str]] = set()

    def __enter__(self) -> Self:
        self._warnings.__enter__()
        if self.verbose:
            return self
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(max(logger.level, logging.WARNING))
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("default", category=category, module=r"resnet_lightning(\.|$)")
        # Lightning's "No seed found, seed set to 0" (a fit without seed_everything) says what its INFO
        # notice "Seed set to 0" says: the seed is in the run's config.yaml, nothing to fix.
        warnings.filterwarnings("ignore", message="No seed found, seed set to ")
        warnings.showwarning = self._show_warning  # inside catch_warnings, which restores it
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._warnings.__exit__(None, None, None)

    def _show_warning(self, message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text = " ".join(str(message).split())
        if (category, text) in self._seen:
            return
        self._seen.add((category, text))
        source = _package_of(category, filename)
        console.tell(f"warning: {text}" + ("" if source == "resnet_lightning" else f" (from {source})"))


def _package_of(category: type, filename: str) -> str:
    """The top-level package a warning came from: its category's, when that is a library's own class, else its file's."""
    root = category.__module__.split(".")[0]
    if root not in ("builtins", "warnings"):
        return root
    parts = filename.replace("\\", "/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1].removesuffix(".py")
    if "resnet_lightning" in parts:
        return "resnet_lightning"
    return parts[-1].removesuffix(".py") or "python"
