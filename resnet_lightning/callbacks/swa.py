"""Stochastic weight averaging (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima"), through Lightning.

Lightning's :class:`~lightning.pytorch.callbacks.StochasticWeightAveraging` averages the weights
of every epoch from ``swa_epoch_start`` on, at a constant (annealed-to) learning rate ``swa_lrs``,
and when training ends puts the average in the model and recomputes the batch-norm statistics
with one more pass over the training data. This subclass only lets it copy our module (see
:func:`~.ema.shared_while_copied`) and says what it does.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import StochasticWeightAveraging
from typing_extensions import override

from ..console import tell
from .ema import shared_while_copied


class SWA(StochasticWeightAveraging):
    """Added by ``ResNetClassifier(swa_lrs=...)`` (``--model.swa_lrs 0.01``) through ``configure_callbacks``, on fits only."""

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        with shared_while_copied(pl_module) as shared:
            super().setup(trainer, pl_module, stage)
        if getattr(self, "_average_model", None) is not None:
            self._average_model.__dict__.update(shared)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        tell(
            f"fit: SWA from epoch {self.swa_start + 1} at lr {self._swa_lrs}: the weights of each epoch from then on "
            "are averaged; the average (batch-norm statistics recomputed) is the model when the fit ends"
        )
