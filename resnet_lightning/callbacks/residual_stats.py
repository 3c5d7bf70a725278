"""Residual ratios during training: ``||F(x)|| / ||shortcut(x)||`` per block, every N steps.

The measurement and why it is the ratio of RMS norms: :mod:`resnet_lightning.analysis.residual_ratio`.
Here every ``every_n_steps`` steps it runs on a fixed probe batch (the first training
batch), and the value is logged as ``residual_ratio/block_NN``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from typing_extensions import override

from ..analysis.residual_ratio import residual_ratios
from ..models.residual import find_network
from .errors import CallbackConfigError
from .over_depth import log_step, save_over_depth


class ResidualBranchMonitor(L.Callback):
    """Log ``||F(x)|| / ||shortcut(x)||`` per residual block every N steps (method: :mod:`~resnet_lightning.analysis.residual_ratio`).

    Args:
        every_n_steps: Measure every this many optimizer steps (and at step 0).
        probe_size: Samples of the first training batch kept as the probe.
        plot: Save ``residual_ratio.png`` / ``.csv`` at the end of fit.
    """

    def __init__(self, every_n_steps: int = 50, probe_size: int = 64, plot: bool = True) -> None:
        if every_n_steps < 1 or probe_size < 1:
            raise CallbackConfigError(f"ResidualBranchMonitor: every_n_steps and probe_size must be >= 1, got {every_n_steps} and {probe_size}")
        self.every_n_steps = every_n_steps
        self.probe_size = probe_size
        self.plot = plot
        self.history: list[tuple[int, list[float]]] = []
        self.block_indices: list[int] = []  # depth index of each measured block
        self._probe: torch.Tensor | None = None
        self._warned = False  # about blocks without the residual structure: once per fit, not every N steps

    @override
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._probe is None:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            self._probe = images[: self.probe_size].detach().clone()
        # Measured before the step's update, so step 0 is the initialisation.
        if trainer.global_step % self.every_n_steps or not trainer.is_global_zero:
            return
        if self.history and self.history[-1][0] == trainer.global_step:
            return  # gradient accumulation: several batches per optimizer step
        network = find_network(pl_module) or pl_module
        ratios = residual_ratios(network, self._probe.to(pl_module.device), warn=not self._warned)
        self._warned = True
        if not ratios:
            return
        self.block_indices = sorted(ratios)
        self.history.append((trainer.global_step, [ratios[i] for i in self.block_indices]))
        metrics = {f"residual_ratio/block_{i:02d}": v for i, v in ratios.items()}
        log_step(trainer, metrics)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.plot or not self.history or not trainer.is_global_zero:
            return
        blocks = [f"block_{i:02d}" for i in self.block_indices]
        save_over_depth(
            trainer, "residual_ratio", blocks, self.history, "||F(x)|| / ||shortcut(x)||", "residual branch / shortcut norm"
        )
