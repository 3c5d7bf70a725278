"""When a fit ends: its run's report page (``<run>/report.html``), written on rank zero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from typing_extensions import override

from ..analysis.summary import model_summary
from ..console import tell
from ..report import write_report
from ..storage import write_atomically

SUMMARY_FILE = "model_summary.json"


class RunReport(L.Callback):
    """Write the run's report (:mod:`resnet_lightning.report`) when ``fit`` or ``test`` ends; ``--report false`` leaves it out.

    The model line needs the input size, which only a batch knows: the first training
    batch's sample shape is kept, and at the end the network's parameters and MACs at
    that shape go into the page and, when no other callback wrote one, ``model_summary.json``
    (so ``resnet-lightning report`` shows the same line later).

    Args:
        run_dir: The run directory (``<root>/<name>/version_N``).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.input_shape: tuple[int, ...] | None = None

    @override
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.input_shape is None:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            self.input_shape = tuple(int(s) for s in images.shape[1:])  # one sample: (C, H, W)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "fit")

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "test")  # the page again, now with the test's results and confusion matrix

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero or not self.run_dir.is_dir():
            return
        summary = None
        if self.input_shape is not None:
            summary = model_summary(pl_module, self.input_shape)
            if not any(self.run_dir.rglob(SUMMARY_FILE)):
                write_atomically(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        device = str(pl_module.device)
        if pl_module.device.type == "cuda":
            import torch

            device += f" ({torch.cuda.get_device_name(pl_module.device)})"
        tell(f"{stage}: report {write_report(self.run_dir, summary=summary, device=device)}")
