"""An exponential moving average of the weights (Polyak & Juditsky 1992), through Lightning.

Lightning's :class:`~lightning.pytorch.callbacks.EMAWeightAveraging` keeps the average
(an ``AveragedModel`` of the whole LightningModule, buffers included), swaps it in for
validation, writes it as the checkpoint's ``state_dict`` (the raw weights go to
``current_model_state``, and both come back on resume) and leaves it in the model when
training ends. So ``val/acc``, the best checkpoint, ``test`` and ``export`` all see the
averaged weights. This subclass adds what a comparison needs beside them: the raw
weights' validation accuracy as ``val/acc_raw``, a start epoch (torchvision's recipe
restarts the average at every step of the warm-up epochs), and a line saying which
weights are evaluated.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from typing_extensions import override

from ..console import tell


@contextmanager
def shared_while_copied(pl_module: L.LightningModule) -> Iterator[dict[str, Any]]:
    """While a weight-averaging callback deep-copies the whole LightningModule: its trainer and its optimizer
    and scheduler factories are not part of the network and need not (and, holding open streams, cannot) be
    copied. They are set aside (yielded, for the copy to share) and put back."""
    shared = {
        name: value for name, value in vars(pl_module).items()
        if name == "_trainer" or (callable(value) and not isinstance(value, torch.nn.Module))
    }
    for name in shared:
        pl_module.__dict__[name] = None
    try:
        yield shared
    finally:
        pl_module.__dict__.update(shared)


class EMA(EMAWeightAveraging):
    """Validate, checkpoint and finish with an EMA of the weights; log the raw ones' accuracy too.

    Added by ``ResNetClassifier(ema_decay=...)`` (``--model.ema_decay 0.9999``) through
    ``configure_callbacks``, on fits only.

    Args:
        decay: Weight of the old average at each update: ``avg = decay * avg + (1 - decay) * w``.
        every_n_steps: Update after every n-th optimizer step (torchvision's recipe: 32).
        start_epoch: Until this epoch the average is reset to the current weights at each
            update (torchvision resets it during the learning-rate warm-up).
    """

    def __init__(self, decay: float, every_n_steps: int = 1, start_epoch: int = 0) -> None:
        super().__init__(decay=decay, update_every_n_steps=every_n_steps)
        self.decay, self.start_epoch = decay, start_epoch
        self._raw_correct = self._raw_total = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        with shared_while_copied(pl_module) as shared, warnings.catch_warnings():
            # ResNetClassifier.configure_model only compiles; it shards nothing, which is what this warns about.
            warnings.filterwarnings("ignore", message=".*WeightAveraging doesn't support sharding")
            super().setup(trainer, pl_module, stage)
        if self._average_model is not None:
            self._average_model.module.__dict__.update(shared)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tell(
            f"fit: EMA of the weights (decay {self.decay:g}, every {self.update_every_n_steps} step(s), from epoch "
            f"{self.start_epoch}): val/acc, checkpoints, test and export use the averaged weights; "
            "val/acc_raw is the raw weights' accuracy"
        )

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch < self.start_epoch and self._average_model is not None:
            self._average_model.n_averaged.zero_()  # the next update copies the weights (see AveragedModel)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    @override
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)  # the average is now in pl_module, the raw weights here
        if self._average_model is not None:
            self._average_model.module.eval()
            self._raw_correct = torch.zeros((), dtype=torch.int64, device=pl_module.device)
            self._raw_total = torch.zeros((), dtype=torch.int64, device=pl_module.device)

    @override
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._average_model is None or self._raw_total is None:
            return
        images, labels = batch  # (N, C, H, W), (N,)
        with torch.no_grad():
            logits = self._average_model.module(images)  # the raw weights, swapped out for validation
        self._raw_correct += (logits.argmax(dim=-1) == labels).sum()
        self._raw_total += labels.numel()

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is not None and self._raw_total is not None and not trainer.sanity_checking:
            correct = trainer.strategy.reduce(self._raw_correct, reduce_op="sum")
            total = trainer.strategy.reduce(self._raw_total, reduce_op="sum")
            if total > 0:
                pl_module.log("val/acc_raw", correct.float() / total.float(), on_epoch=True)
        self._raw_correct = self._raw_total = None
        super().on_validation_epoch_end(trainer, pl_module)
