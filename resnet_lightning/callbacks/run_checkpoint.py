"""A ``ModelCheckpoint`` whose ``last.ckpt`` is always the latest state of the run."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from .errors import CallbackConfigError


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` with a ``last.ckpt`` that never lags behind.

    Lightning (2.6) rewrites ``last.ckpt`` only when it also saved a top-k checkpoint
    at that step, so with a monitored metric it stays at the last *improvement*: a
    15-epoch fit could end with ``last.ckpt`` at epoch 6, and a kill lost every epoch
    since. Here ``last.ckpt`` is also rewritten

    * at the end of every training epoch (and after every validation), improved or not;
    * every ``save_last_every_n_train_steps`` optimizer steps, if set (long ImageNet
      epochs; the mid-epoch position is resumed exactly by the on-device loader);
    * when the fit is stopped by SIGTERM or SIGINT (Lightning raises ``SIGTERMException``
      at the next batch boundary; see :class:`~resnet_lightning.callbacks.StopOnSignal`).

    Top-k checkpoints are Lightning's, except that a tie with the k-th best replaces
    it: on a small validation set (digits has 180 images) accuracy ties are common, and
    Lightning's strict comparison kept the *first* of a tie, the least trained model
    (the digits main job's "best" was epoch 3 of 15, 95.0% test accuracy against 97.8%
    for the last epoch of the same validation accuracy). A run directory that was moved or
    copied (to another disk, another machine) resumes as itself: Lightning forgets the
    saved checkpoint paths when the directory differs, and would then write ``last-v1.ckpt``
    beside the ``last.ckpt`` it resumed from (which the next resume would pick, stale)
    and lose track of the top-k files.

    Args:
        save_last_every_n_train_steps: Also rewrite ``last.ckpt`` every this many
            training steps (0: only at epoch ends). Needs ``save_last``.
        **kwargs: ``ModelCheckpoint``'s arguments (``dirpath``, ``monitor``, ``save_top_k``, ...).
    """

    def __init__(self, save_last_every_n_train_steps: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if save_last_every_n_train_steps < 0:
            raise CallbackConfigError(
                f"save_last_every_n_train_steps={save_last_every_n_train_steps} must be 0 (off) or a number of steps"
            )
        self.save_last_every_n_train_steps = save_last_every_n_train_steps

    @override
    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        if super().check_monitor_top_k(trainer, current):
            return True
        if current is None or self.save_top_k < 1 or len(self.best_k_models) < self.save_top_k:
            return False
        kth = self.best_k_models[self.kth_best_model_path]
        return trainer.strategy.reduce_boolean_decision(bool(current.to(kth.device) == kth))

    def _save_fresh_last(self, trainer: L.Trainer) -> None:
        # _should_skip_saving_checkpoint also skips a step already saved (by top-k or here).
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        n = self.save_last_every_n_train_steps
        if n and trainer.global_step % n == 0:
            self._save_fresh_last(trainer)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_fresh_last(trainer)

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # When top-k saves at the train epoch's end (after validation), saving here first
        # would mark the step as saved and make top-k skip it.
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_fresh_last(trainer)

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        # Lightning raises SIGTERMException between batches, after the loops counted the
        # batch, so the state saved here is a consistent mid-epoch position to resume from.
        if isinstance(exception, SIGTERMException):
            self._save_fresh_last(trainer)

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and os.path.normpath(saved) != os.path.normpath(self.dirpath):
            moved = _relocated(state_dict, saved, self.dirpath)
            last = moved.get("last_model_path")
            if last and os.path.isfile(last):  # the run's own last checkpoint is here: the run was moved
                state_dict = moved
        super().load_state_dict(state_dict)


def _relocated(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``ModelCheckpoint`` state with the paths under ``old`` moved under ``new``."""

    def move(path: Any) -> Any:
        if not isinstance(path, str) or not path:
            return path
        relative = os.path.relpath(path, old)
        return path if relative.startswith(os.pardir) else os.path.join(new, relative)

    moved = {**state, "dirpath": new}
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            moved[key] = move(state[key])
    if isinstance(state.get("best_k_models"), dict):
        moved["best_k_models"] = {move(path): score for path, score in state["best_k_models"].items()}
    return moved
