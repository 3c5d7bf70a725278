"""Gradient norm per block over depth: the vanishing-gradient picture.

He et al. (2015, Sec. 4.1) argue that plain-56 trains worse than plain-20 not
because of vanishing gradients (they use BN) but because it is hard to optimise;
Balduzzi et al. (2017) and Veit et al. (2016) show residual networks keep
gradients informative at depth. This callback lets you look: the L2 norm of each
block's parameter gradients, logged every ``every_n_steps`` optimizer steps as
``grad_norm/block_NN`` (``NN`` = depth index from the input), and at the end of
fit a PNG of norm against depth, one line per logged step.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import grad_norm
from torch import nn
from typing_extensions import override

from ..models.residual import find_network, structured_blocks
from .errors import CallbackConfigError
from .over_depth import log_step, save_over_depth


def _grad_norm(module: nn.Module) -> float | None:
    # Lightning's grad_norm: the 2-norm of all the module's gradients as one vector.
    total = grad_norm(module, 2).get("grad_2.0_norm_total")
    return None if total is None else float(total)


class GradientFlowMonitor(L.Callback):
    """Log the gradient norm of every residual block every N optimizer steps.

    The norm is taken in ``on_before_optimizer_step``, after Lightning unscales
    AMP gradients and after DDP averaged them (so rank zero's is everyone's), and
    before gradient clipping. The blocks are those of the network's ``blocks()``
    that expose the residual structure (``branch``/``shortcut``/``merge``); the
    others are skipped with one warning naming them. Models without ``blocks()``
    fall back to their top-level children that have parameters (with a warning).

    Args:
        every_n_steps: Log every this many optimizer steps (and at step 0).
        plot: Save ``gradient_flow.png`` / ``.csv`` at the end of fit.
    """

    def __init__(self, every_n_steps: int = 50, plot: bool = True) -> None:
        if every_n_steps < 1:
            raise CallbackConfigError(f"GradientFlowMonitor: every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.plot = plot
        self.history: list[tuple[int, list[float]]] = []  # (step, norm per block)
        self._modules: list[tuple[str, nn.Module]] = []

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if find_network(pl_module) is not None:
            self._modules = [(f"block_{i:02d}", b) for i, b in structured_blocks(pl_module, "gradient flow")]
            return
        network = getattr(pl_module, "model", pl_module)
        self._modules = [(name, m) for name, m in network.named_children() if any(True for _ in m.parameters())]
        warnings.warn(
            f"GradientFlowMonitor: {type(network).__name__} has no blocks() method; logging the gradient norm "
            f"of its top-level children instead ({[n for n, _ in self._modules]})",
            stacklevel=2,
        )

    @override
    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if trainer.global_step % self.every_n_steps or not trainer.is_global_zero or not self._modules:
            return
        norms = [_grad_norm(m) for _, m in self._modules]
        values = [n if n is not None else float("nan") for n in norms]
        self.history.append((trainer.global_step, values))
        metrics = {f"grad_norm/{name}": v for (name, _), v in zip(self._modules, values) if not math.isnan(v)}
        log_step(trainer, metrics)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.plot or not self.history or not trainer.is_global_zero:
            return
        title = f"{type(find_network(pl_module) or pl_module).__name__} {_model_label(pl_module)}"
        save_over_depth(trainer, "gradient_flow", [name for name, _ in self._modules], self.history, "gradient norm", title)


def _model_label(pl_module: L.LightningModule) -> str:
    hparams: Any = getattr(pl_module, "hparams", {})
    return " ".join(str(hparams[k]) for k in ("arch", "block") if hparams.get(k))

