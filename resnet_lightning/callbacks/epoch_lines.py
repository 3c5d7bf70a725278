"""One line per epoch: what a user reads of a fit, in a terminal or a log file.

With no progress bar (the default when stderr is not a terminal: a log file, a pipe, a
cluster's job) these lines are the fit's whole record on the console, one per epoch instead
of one per progress-bar refresh. With a bar, the line is written through it, so the bar
stays whole.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from typing_extensions import override

from ..console import line, tell

# What the line shows, when logged this epoch; the checkpoint's monitored metric is added when it is another.
SHOWN = ("train/loss", "train/acc", "val/loss", "val/acc")
THROUGHPUT, MFU = "train/images_per_sec", "train/mfu"  # logged by TrainingThroughput (before this callback)


class EpochLines(L.Callback):
    """After each training epoch (its validation included), one line on rank zero, e.g.

    ``resnet-lightning: epoch 3/15  train/loss 0.412  train/acc 0.871  val/loss 0.3  val/acc 0.902  lr 0.05  412 img/s  6.1 s``

    The metrics are those logged this epoch (validation's only when it ran), the learning
    rate the epoch started with (the largest, with several parameter groups), the images per
    second when ``train/images_per_sec`` is logged, and the epoch's wall time. It also keeps
    the epoch of the best checkpoint (saved in checkpoints, so a resumed fit still knows it)
    for the summary a fit ends with.
    """

    def __init__(self) -> None:
        self.best_epoch: int | None = None
        self._best_path: str | None = None
        self._started: float | None = None
        self._lr: float | None = None
        self._validated = False
        self._last_epoch: int | None = None

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._note_best(trainer)
        self._started, self._validated = time.perf_counter(), False
        lrs = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        self._lr = max(lrs) if lrs else None

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._note_best(trainer)

    def _note_best(self, trainer: L.Trainer) -> None:
        # Checked after the epoch's hooks have all run: Lightning calls the checkpoint callbacks' last.
        best_path = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
        if best_path is not None and best_path != self._best_path and self._last_epoch is not None:
            self.best_epoch, self._best_path = self._last_epoch, best_path

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_epoch = trainer.current_epoch
        if not trainer.is_global_zero:
            return
        text = self.epoch_line(trainer)
        bar = trainer.progress_bar_callback
        if isinstance(bar, TQDMProgressBar) and bar.is_enabled:
            bar.print(line(text), file=sys.stderr)  # tqdm clears its bars, writes the line, draws them again
        else:
            tell(text)

    def epoch_line(self, trainer: L.Trainer) -> str:
        """This epoch's line, without the program's name."""
        epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
        parts = [f"epoch {trainer.current_epoch + 1}" + (f"/{epochs}" if epochs else "")]
        metrics = trainer.callback_metrics
        monitor = getattr(trainer.checkpoint_callback, "monitor", None)
        for key in dict.fromkeys([*SHOWN, *([monitor] if monitor else [])]):
            if key.startswith("val/") and not self._validated:
                continue  # not validated this epoch (check_val_every_n_epoch): last epoch's value would mislead
            value = _scalar(metrics.get(f"{key}_epoch", metrics.get(key)))
            if value is not None:
                parts.append(f"{key} {value:.4f}" if "acc" in key else f"{key} {value:.4g}")  # accuracies to 0.01%
        if self._lr is not None:
            parts.append(f"lr {self._lr:.3g}")
        images_per_sec = _scalar(metrics.get(THROUGHPUT))
        if images_per_sec is not None:
            parts.append(f"{images_per_sec:,.0f} img/s")
        mfu = _scalar(metrics.get(MFU))
        if mfu is not None:
            parts.append(f"MFU {mfu:.0%}")
        if self._started is not None:
            parts.append(f"{time.perf_counter() - self._started:.1f} s")
        return "  ".join(parts)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_path": self._best_path}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_epoch, self._best_path = state_dict.get("best_epoch"), state_dict.get("best_path")


def _scalar(value: Any) -> float | None:
    try:
        return float(value) if value is not None and getattr(value, "numel", lambda: 1)() == 1 else None
    except (TypeError, ValueError):
        return None


class ProgressBar(TQDMProgressBar):
    """Lightning's bar without ``v_num`` (the logger's version, e.g. ``on_0``): the run directory says which run it is."""

    @override
    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
