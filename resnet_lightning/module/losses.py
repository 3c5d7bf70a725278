"""The training losses: cross-entropy, or binary cross-entropy with a target threshold (Wightman et al. 2021)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError


class NonFiniteLossError(UserError, RuntimeError):
    """The training loss became NaN or infinite."""


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, hparams: Mapping[str, Any]) -> torch.Tensor:
    """The loss of ``logits`` (N, K) against class indices (N,) or class probabilities (N, K) (MixUp/CutMix).

    ``loss: ce`` is the cross-entropy with label smoothing. ``loss: bce`` is timm's
    ``BinaryCrossEntropy``, as in "ResNet strikes back" (Wightman et al. 2021): one sigmoid per
    class against the (smoothed) one-hot or mixed targets, with ``bce_target_threshold`` set a
    target above it becomes 1 and the rest 0 (a mixed image counts as both its classes).
    """
    smoothing = hparams["label_smoothing"]
    if hparams.get("loss", "ce") == "ce":
        return F.cross_entropy(logits, targets, label_smoothing=smoothing)
    num_classes = logits.shape[-1]
    if targets.ndim == 1:
        targets = F.one_hot(targets, num_classes)
    targets = targets.to(logits.dtype) * (1.0 - smoothing) + smoothing / num_classes  # timm's on/off values
    threshold = hparams.get("bce_target_threshold")
    if threshold is not None:
        targets = targets.gt(threshold).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, targets)  # mean over N x K, as timm


def non_finite_message(trainer: Any, loss: torch.Tensor, global_step: int, epoch: int) -> str:
    """The line a :class:`NonFiniteLossError` says: where it happened and the likely cause."""
    lrs = [group["lr"] for group in trainer.optimizers[0].param_groups] if trainer.optimizers else []
    precision = trainer.precision
    hint = f"the learning rate is too high (lr={max(lrs):g}; lower it or add --model.warmup)" if lrs else "the learning rate is too high"
    if precision in ("16-mixed", "16-true", "16"):
        hint += f", or float16 overflowed (precision={precision}; try bf16-mixed or 32-true)"
    return (
        f"training loss became {loss.item()} at global step {global_step} "
        f"(epoch {epoch}); the likely cause is that {hint}. The run was "
        f"stopped before this step's update; the last checkpoint written before it is kept."
    )
