"""What was trained, in numbers a run table can sort by, logged when a fit starts.

The numbers: :func:`resnet_lightning.analysis.summary.model_summary`.
"""

from __future__ import annotations

import json
from typing import Any

import lightning as L
from typing_extensions import override

from ..analysis.summary import model_summary
from ..console import tell
from ..tracking.outputs import report_dir


class ArchitectureSummary(L.Callback):
    """At the first training batch, log the model summary as ``model_summary.*`` hyperparameters.

    The parameter count, MACs and depth are also logged as metrics ``model/parameters``,
    ``model/macs`` and ``model/depth`` (at step 0), so dashboards can plot them.

    The input size is the first batch's (one sample), so MACs are those of the
    images actually trained on. Printed once, written to ``model_summary.json``
    in the report directory, and logged to every logger's config.
    """

    def __init__(self) -> None:
        self.summary: dict[str, Any] | None = None

    @override
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.summary is not None:
            return
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        self.summary = model_summary(pl_module, tuple(images.shape[1:]))
        if not trainer.is_global_zero:
            return
        s = self.summary
        macs = f"{s['macs'] / 1e6:.2f} M" if s["macs"] is not None else "n/a"
        tell(  # ours, not Lightning's: shown when Lightning's notices are not
            f"model: {s['arch']} ({s['arch_plugin']}), block {s['block']} ({s['block_plugin']}), depth {s['depth']}, "
            f"{s['num_blocks']} blocks, {s['parameters']:,} parameters, {macs} MACs per {'x'.join(map(str, s['input_size']))} input"
        )
        # As config (to filter and group runs) and the numbers also as metrics, which
        # dashboards can plot against accuracy (model/parameters, model/macs, model/depth).
        numbers = {f"model/{k}": s[k] for k in ("parameters", "macs", "depth") if s[k] is not None}
        for logger in trainer.loggers:
            logger.log_hyperparams({f"model_summary.{k}": v for k, v in s.items()})
            logger.log_metrics(numbers, step=trainer.global_step)
        directory = report_dir(trainer)
        if directory is not None:
            (directory / "model_summary.json").write_text(json.dumps(s, indent=2))
