"""Progress of a long analysis on stderr: a bar in a terminal, a few lines in a log file."""

from __future__ import annotations

import sys
import time
from typing import Any

from ..console import tell


class Progress:
    """Counts the steps of one piece of work and shows how far it is.

    When stderr is a terminal, a tqdm bar (removed when done); otherwise (a file, a pipe,
    a cluster's log) a line about every tenth of the work and one at the end, e.g.
    ``resnet-lightning: lesion resnet56: 60/120 evaluations (4.1 s)``: never a line per refresh.

    Args:
        description: What is being done, e.g. ``"lesion resnet56"``.
        total: The number of steps.
        unit: What a step is, e.g. ``"evaluations"``.
        lines: Lines written over the whole work when stderr is not a terminal.
    """

    def __init__(self, description: str, total: int, unit: str = "steps", lines: int = 10) -> None:
        self.description, self.total, self.unit = description, max(0, total), unit
        self.done = 0
        self._every = max(1, -(-self.total // max(1, lines)))  # ceil: at most `lines` lines
        self._start = time.perf_counter()
        self._bar: Any = None
        if sys.stderr.isatty() and self.total > 0:
            from tqdm.auto import tqdm  # installed with Lightning

            self._bar = tqdm(total=self.total, desc=description, unit=f" {unit}", file=sys.stderr, leave=False, dynamic_ncols=True)

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more steps done."""
        self.done += steps
        if self._bar is not None:
            self._bar.update(steps)
            if self.done >= self.total:
                self._bar.close()
        elif self.done // self._every > (self.done - steps) // self._every or self.done == self.total:
            seconds = time.perf_counter() - self._start
            tell(f"{self.description}: {self.done}/{self.total} {self.unit} ({seconds:.1f} s)")
