"""An architecture that returns a dict of parts instead of a module."""

from __future__ import annotations

from typing import Any

from torch import nn


def rl_returns_dict(*, num_classes: int = 10, in_channels: int = 3, block: Any = None, **kwargs: Any) -> dict:
    return {"features": nn.Conv2d(in_channels, 8, 3), "head": nn.Linear(8, num_classes)}


def rl_builds_forever(*, num_classes: int = 10, in_channels: int = 3, block: Any = None, **kwargs: Any) -> nn.Module:
    """Imports fine, never finishes building (a download that never ends, say)."""
    import time

    while True:
        time.sleep(1)
