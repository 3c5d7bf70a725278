"""What an analysis cannot use, as user errors: one line each, no traceback (:mod:`resnet_lightning.errors`)."""

from __future__ import annotations

from ..errors import UserError


class AnalysisInputError(UserError, ValueError):
    """A checkpoint, run or table an analysis cannot use: the message names it and what to pass instead."""


class AnalysisInputMissing(UserError, FileNotFoundError):
    """A checkpoint or run directory that is not there: the message names it and what to pass instead."""
