"""The epoch lines of a trial's fit, echoed on its worker's console with the trial's number."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..console import PROG, line


class EpochEcho:
    """Copies the epoch lines a trial's fit writes to its log onto the worker's console, with the trial's number.

    The worker reads the log while it waits (the fit's process is not told anything, so a
    trial started either way, ``fork`` or ``fresh``, shows the same lines). A console that
    is gone (a closed terminal, a broken pipe) stops the echo, never the trial.
    """

    MARK = line("epoch ")  # what EpochLines writes: "resnet-lightning: epoch 2/8  ..."

    def __init__(self, log: Path, prefix: str) -> None:
        self.log, self.prefix = log, prefix
        self._offset, self._partial, self._on = 0, b"", True

    def __call__(self) -> None:
        """Echo the epoch lines written since the last call."""
        if not self._on:
            return
        try:
            with open(self.log, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            text = raw.decode(errors="replace").rstrip("\r")
            if text.startswith(self.MARK):
                try:
                    print(f"{self.prefix} {text[len(PROG) + 2:]}", file=sys.stderr, flush=True)
                except (OSError, ValueError):  # the console is gone: the trial goes on without it
                    self._on = False
                    return


def trial_name(log: Path) -> str:
    """``trial 3`` for the log ``trial-0003.log`` (another log's name as it is)."""
    match = re.fullmatch(r"trial-(\d+)", log.stem)
    return f"trial {int(match[1])}" if match else log.stem
