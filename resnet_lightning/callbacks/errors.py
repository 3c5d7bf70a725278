"""A callback's option out of range, as a user error: one line, no traceback (:mod:`resnet_lightning.errors`)."""

from __future__ import annotations

from ..errors import UserError


class CallbackConfigError(UserError, ValueError):
    """A callback argument no run can use (``every_n_steps=0``, say); the message names it and the range."""
