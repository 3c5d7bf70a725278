"""Error rate, the quantity the degradation experiment is plotted in (He et al. 2015, Fig. 1 and 6)."""

from __future__ import annotations

import lightning as L
from typing_extensions import override


class ErrorRateMonitor(L.Callback):
    """Log ``{stage}/error = 1 - {stage}/acc`` at the end of each training and validation epoch.

    Reads the epoch accuracy the LightningModule logged (``train/acc``, ``val/acc``),
    so the error curves of plain and residual networks can share one chart with
    the paper's axes.

    Args:
        accuracy_key: The accuracy metric's name after the ``stage/`` prefix.
    """

    def __init__(self, accuracy_key: str = "acc") -> None:
        self.accuracy_key = accuracy_key

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        accuracy = trainer.callback_metrics.get(f"{stage}/{self.accuracy_key}")
        if accuracy is not None:
            pl_module.log(f"{stage}/error", 1.0 - accuracy.float(), on_step=False, on_epoch=True)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "train")

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")
