"""How much each residual branch adds to its shortcut: ``||F(x)|| / ||shortcut(x)||``.

A residual block computes ``shortcut(x) + F(x)``. He et al. (2015, Sec. 4.2 and
Fig. 7) found the responses of residual branches small, so blocks act as small
corrections to the identity; Veit et al. (2016) and Jastrzebski et al. (2018)
read the same ratio as "how far each block moves the representation".

Method: every ``every_n_steps`` steps the network, in eval mode and without
gradients, runs on a fixed probe batch (the first training batch); each block's
input ``x`` is kept, and the block's own ``branch(x)`` and ``shortcut(x)`` (its
residual structure, :mod:`resnet_lightning.models.residual`) give ``F(x)`` and
the shortcut output, whatever the block's layers are called. The logged value
``residual_ratio/block_NN`` is ``sqrt(sum_n ||F(x_n)||^2 / sum_n ||shortcut(x_n)||^2)``
over the probe samples: the ratio of root-mean-square norms, which a few samples
whose shortcut is nearly zero cannot blow up (a per-sample mean of ratios can:
a zero-padding shortcut that subsamples a 4x4 map may keep only background
pixels). Blocks whose ``shortcut(x)`` is None (plain blocks) have no ratio; blocks
without ``branch``/``shortcut``/``merge`` are skipped with one warning naming them.
Eval mode means BN uses its running statistics and no state changes; a model
compiled with ``nn.Module.compile()`` is measured eagerly through the same modules.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from typing_extensions import override

from ..models.residual import block_inputs, find_network, structured_blocks
from ..tracking.outputs import save_figure, save_table
from .gradient_flow import plot_over_depth


@torch.no_grad()
def residual_ratios(network: nn.Module, images: torch.Tensor, warn: bool = True) -> dict[int, float]:
    """``||branch(x)|| / ||shortcut(x)||`` over the batch (RMS norms) per block index, for blocks with a shortcut.

    Args:
        network: A module whose blocks :func:`~resnet_lightning.models.residual_blocks` finds.
        images: A probe batch ``(N, C, H, W)`` on the network's device.
        warn: Warn about blocks without the residual structure (they are skipped).
    """
    blocks = structured_blocks(network, "residual ratio", warn=warn)
    if not blocks:
        return {}
    inputs = block_inputs(network, [b for _, b in blocks], images)
    ratios = {}
    was_training = network.training
    network.eval()
    try:
        for (i, block), x in zip(blocks, inputs):
            if x is None:
                continue  # not reached by forward
            shortcut = block.shortcut(x)
            if shortcut is None:
                continue  # no skip path (a plain block): no ratio
            branch = block.branch(x).detach().float().pow(2).sum()  # squared norm over the batch
            ratios[i] = (branch / shortcut.detach().float().pow(2).sum().clamp_min(1e-30)).sqrt().item()
    finally:
        network.train(was_training)
    return ratios


class ResidualBranchMonitor(L.Callback):
    """Log ``||F(x)|| / ||shortcut(x)||`` per residual block every N steps (method in the module docstring).

    Args:
        every_n_steps: Measure every this many optimizer steps (and at step 0).
        probe_size: Samples of the first training batch kept as the probe.
        plot: Save ``residual_ratio.png`` / ``.csv`` at the end of fit.
    """

    def __init__(self, every_n_steps: int = 50, probe_size: int = 64, plot: bool = True) -> None:
        if every_n_steps < 1 or probe_size < 1:
            raise ValueError(f"every_n_steps and probe_size must be >= 1, got {every_n_steps} and {probe_size}")
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
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.plot or not self.history or not trainer.is_global_zero:
            return
        save_table(
            trainer, "diagnostics/residual_ratio_table", ["step", *[f"block_{i:02d}" for i in self.block_indices]],
            [[step, *values] for step, values in self.history], "residual_ratio.csv",
        )
        figure = plot_over_depth(self.history, "||F(x)|| / ||shortcut(x)||", "residual branch / shortcut norm")
        save_figure(trainer, "diagnostics/residual_ratio", figure, "residual_ratio.png")
