"""Marks a fit's run directory as started when training starts (see :mod:`resnet_lightning.runs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from .. import runs


class TrainingStarted(Callback):
    """Marks the run a fit writes as started once training starts: from then on it stays, whatever happens."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        runs.mark_started(self.run_dir)
