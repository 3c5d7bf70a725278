"""Stop a fit cleanly on SIGTERM (cluster preemption) and SIGINT (Ctrl+C)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override


class StopOnSignal(L.Callback):
    """Turn SIGINT into Lightning's SIGTERM handling, and remember which signal stopped the fit.

    Lightning already handles SIGTERM well: its handler sets a flag (and forwards the
    signal to DDP workers), and the loops raise ``SIGTERMException`` at the next batch
    boundary, where :class:`RunCheckpoint` saves the state. But SIGINT raises
    ``KeyboardInterrupt`` wherever the interpreter happens to be (inside an optimizer
    step, say), Lightning then exits 1, and ``SIGTERMException`` is a ``SystemExit``
    with code 0. Here both signals take Lightning's SIGTERM path; a second Ctrl+C stops
    at once. ``signum`` tells the CLI what to print and which exit code to use
    (128 + signal: 143 for SIGTERM, 130 for SIGINT).

    The handlers are installed at ``on_train_start``, after Lightning registered its
    own (it restores all handlers when the fit ends).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.step: int | None = None
        self.epoch: int | None = None
        self.last_checkpoint: Path | None = None  # where the checkpoint callback saves the stopped state

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signum = self.step = self.epoch = self.last_checkpoint = None
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        lightning_handler = signal.getsignal(signal.SIGTERM)

        def handle(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGINT and self.signum == signal.SIGINT:
                raise KeyboardInterrupt  # Ctrl+C twice: stop now, without saving
            self.signum = self.signum or signum
            if callable(lightning_handler):
                lightning_handler(signum, frame)

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self.signum = self.signum or signal.SIGTERM  # e.g. a DDP worker told by rank 0
            self.step, self.epoch = trainer.global_step, trainer.current_epoch
            callback = trainer.checkpoint_callback
            if isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath:
                self.last_checkpoint = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
