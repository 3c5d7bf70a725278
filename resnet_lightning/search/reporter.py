"""The callback a trial's fit carries: it reports to the study, and the study may prune it.

Modelled on ``optuna_integration.PyTorchLightningPruningCallback``: after every
validation the monitored metric is reported as the trial's intermediate value
and the pruner is asked whether to stop. It differs where a trial here differs
from Optuna's in-process example: the fit runs in a process of its own, so the
callback finds its trial by storage address and id (``optuna.trial.Trial(study,
trial_id)``), and a pruned fit stops the way an early-stopped one does (its
checkpoints and logs are kept) instead of raising ``TrialPruned`` through the
CLI; the search worker reads ``pruned_at_epoch`` and tells the study.
With ``pruner: moasha`` the decision is :class:`~.moasha.MOASHA`'s, at the
end of each training epoch, and Optuna's pruner is never asked.

It also records, as the trial's user attributes, what the objectives need:
every epoch's value of the objective metrics (``history``, and the epoch of each
value in ``history_epochs``), the network's MACs at the data's input size, its
parameter count, the run directory and the fit's own seconds. A ``train/`` metric
is recorded when the training epoch ends (Lightning computes it after the epoch's
validation), any other after each validation. In a ``test`` (a comparison tests
each fit's best checkpoint) it records every metric the test logged as
``test_metrics``. Under DDP only rank zero talks to the study; a pruning decision
is broadcast.
"""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Any

import lightning as L
import optuna
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..models.flops import count_macs, count_parameters
from .algorithms import make_pruner
from .moasha import MOASHA
from .storage import open_storage


class SearchTrialReporter(Callback):
    """Report a fit's metrics to its Optuna trial every epoch; stop the fit when the pruner says so.

    Args:
        storage: The study's storage address (database URL or journal file path).
        study_name: The study.
        trial_id: The trial's storage id (``trial._trial_id``), which names it across processes.
        trial_number: The trial's number in its study (recorded in the run's config, e.g. on W&B).
        metrics: Metrics to record every epoch (the objectives' and the monitored one).
        monitor: The metric reported to the pruner (None: record only, never prune).
        pruner: The normalised ``pruner:`` spec of the search file (see :mod:`.algorithms`).
        worker_pid: The search worker's pid; if it dies (``kill -9``) the fit stops itself
            with SIGTERM, saving ``last.ckpt``, instead of running on unobserved.
    """

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_id: int,
        trial_number: int | None = None,
        metrics: list[str] | None = None,
        monitor: str | None = None,
        pruner: dict[str, Any] | None = None,
        worker_pid: int | None = None,
    ) -> None:
        super().__init__()
        self.storage, self.study_name, self.trial_id, self.trial_number = storage, study_name, trial_id, trial_number
        self.metrics = list(metrics or [])
        self.monitor = monitor
        self.pruner = pruner or {"name": "none"}
        self.worker_pid = worker_pid
        self._trial: optuna.Trial | None = None
        self._history: dict[str, list[float | None]] = {m: [] for m in self.metrics}
        self._epochs: dict[str, list[int]] = {m: [] for m in self.metrics}
        self._fit_start = 0.0
        self._macs_counted = False
        self._moasha: MOASHA | None = None

    def _set(self, key: str, value: Any) -> None:
        self._trial.set_user_attr(key, value)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage not in ("fit", "test") or not trainer.is_global_zero or self._trial is not None:
            return
        study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage), pruner=make_pruner(self.pruner))
        self._trial = optuna.trial.Trial(study, self.trial_id)
        if stage == "test":
            return
        self._set("run_dir", str(trainer.default_root_dir))
        self._set("params", count_parameters(pl_module))
        if self.pruner["name"] == "moasha":
            self._moasha = MOASHA(self.pruner, trainer.max_epochs)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    @override
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.worker_pid is not None and trainer.is_global_zero and os.getppid() != self.worker_pid:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's StopOnSignal saves and exits 143
        if self._trial is not None and not self._macs_counted:
            images = batch[0]  # (N, C, H, W): one image at the data's own size
            self._set("macs", count_macs(pl_module, (1, *images.shape[1:])))
            self._macs_counted = True

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:  # Lightning validates twice before training; not an epoch
            return
        prune = False
        if self._trial is not None:
            logged = trainer.callback_metrics
            self._record(trainer, pl_module, training=False)
            self._set("epochs", pl_module.current_epoch + 1)
            self._set("logged_metrics", sorted(logged))
            score = logged.get(self.monitor) if self.monitor and self._moasha is None else None
            if score is not None and math.isfinite(float(score)):
                self._trial.report(float(score), step=pl_module.current_epoch)
                prune = self._trial.should_prune()
                if prune:
                    self._set("pruned_at_epoch", pl_module.current_epoch)
        prune = trainer.strategy.broadcast(prune)
        trainer.should_stop = trainer.should_stop or prune

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stop = False
        if self._trial is not None:
            self._record(trainer, pl_module, training=True)
            # MO-ASHA decides here, where this epoch's train/ and val/ values are both known.
            epoch = pl_module.current_epoch + 1
            if self._moasha is not None and self._moasha.stops(self._trial, epoch, self._history, self._epochs):
                self._set("pruned_at_epoch", pl_module.current_epoch)
                stop = True
        if self.pruner["name"] == "moasha":  # every rank, so that the broadcast pairs up
            stop = trainer.strategy.broadcast(stop)
            trainer.should_stop = trainer.should_stop or stop

    def _record(self, trainer: L.Trainer, pl_module: L.LightningModule, training: bool) -> None:
        """Append this epoch's value of each watched ``train/`` metric (``training``) or of the others."""
        for name in self.metrics:
            if name.startswith("train/") == training:
                value = trainer.callback_metrics.get(name)
                self._history[name].append(None if value is None else float(value))
                self._epochs[name].append(pl_module.current_epoch + 1)
        self._set("history", self._history)
        self._set("history_epochs", self._epochs)

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._trial is not None:
            self._set("test_metrics", {name: float(value) for name, value in trainer.callback_metrics.items()})

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._trial is not None:
            self._set("fit_seconds", round(time.perf_counter() - self._fit_start, 3))
