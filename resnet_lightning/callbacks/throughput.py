"""Training throughput per epoch: images per second, and on a GPU the model FLOPs utilisation."""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.throughput import get_available_flops, measure_flops
from lightning.pytorch.callbacks.throughput_monitor import _plugin_to_compute_dtype
from typing_extensions import override


class TrainingThroughput(L.Callback):
    """Log ``train/images_per_sec`` once per epoch to every logger, and ``train/mfu`` on a GPU Lightning knows.

    The time is the wall clock of the epoch's training batches, data loading and
    optimizer steps included, from the epoch's start to its last batch's end (when it is
    logged, before any ``on_train_epoch_end`` hook reads it), less any
    validation run in between (``val_check_interval``): the epoch-end validation and
    checkpointing come after the last batch and do not count. Images are summed over
    ranks. Unlike Lightning's ``ThroughputMonitor``, which synchronises the GPU at every
    batch to log a rate per step, this synchronises once per epoch, at its last batch.

    MFU (model FLOPs utilisation) is the training FLOPs per second against the device's
    peak for the precision trained in (Lightning's ``get_available_flops``); the FLOPs of
    one image's forward and backward pass are counted once by Lightning's ``measure_flops``
    on a copy of the network on the meta device. Logged only where the peak is known
    (most recent NVIDIA GPUs), never on a CPU.
    """

    def __init__(self) -> None:
        self._start = self._last_end = self._paused_at = 0.0
        self._images, self._logged = 0, False
        self._peak_flops: int | None = None
        self._flops_per_image: int | None = None
        self._cuda: torch.device | None = None

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        device = trainer.strategy.root_device
        if device.type == "cuda":
            self._cuda = device
            with warnings.catch_warnings():  # a GPU missing from Lightning's table: no MFU, and no warning about it
                warnings.simplefilter("ignore")
                self._peak_flops = get_available_flops(device, _plugin_to_compute_dtype(trainer.precision_plugin))

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last_end = time.perf_counter()
        self._images, self._paused_at, self._logged = 0, 0.0, False

    @override
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._paused_at:  # a validation ran since the last batch: leave its time out
            self._start += time.perf_counter() - self._paused_at
            self._paused_at = 0.0

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        self._images += len(images)
        if self._peak_flops is not None and self._flops_per_image is None:
            self._flops_per_image = _training_flops(pl_module, images.shape[1:])
        last = batch_idx + 1 >= trainer.num_training_batches or 0 <= trainer.max_steps <= trainer.global_step
        if last and self._cuda is not None:
            torch.cuda.synchronize(self._cuda)  # the epoch's GPU work done, once per epoch
        self._last_end = time.perf_counter()
        if last:  # logged now, so that every on_train_epoch_end (the console's epoch line) sees it
            self._log(pl_module)

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._paused_at = time.perf_counter()

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(pl_module)  # an epoch stopped before its last batch (a signal, early stopping)

    def _log(self, pl_module: L.LightningModule) -> None:
        seconds = self._last_end - self._start
        if self._logged or self._images == 0 or seconds <= 0:
            return
        self._logged = True
        rate = self._images / seconds
        # Summed over ranks: each trains its own shard at the same time.
        pl_module.log("train/images_per_sec", rate, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="sum")
        if self._peak_flops and self._flops_per_image:
            mfu = rate * self._flops_per_image / self._peak_flops  # this rank's; their mean is the run's
            pl_module.log("train/mfu", mfu, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="mean")


def _training_flops(pl_module: L.LightningModule, image_shape: torch.Size) -> int:
    """FLOPs of one image's forward and backward pass, counted on a meta-device copy of the network."""
    network = getattr(pl_module, "model", pl_module)
    meta = copy.deepcopy(network).to("meta")
    return measure_flops(meta, lambda: meta(torch.empty(1, *image_shape, device="meta")), loss_fn=torch.Tensor.sum)
