"""Batch-level augmentation for the LightningModule: MixUp and CutMix from ``torchvision.transforms.v2``.

They mix pairs of images *within a batch* and their labels with them, so they run on
the batch as it reaches the model, on the training device, the same for DataLoader,
``on_device`` and DDP runs. torchvision draws their randomness (the Beta-distributed
mixing weight, the CutMix box, which of the two) from the global CPU generator. Here
every call draws from it seeded with a key naming the batch, ``(seed, epoch, batch,
rank)`` in the LightningModule, the way ``data/device.py`` seeds its crops from
``(seed, epoch)``: a resumed run mixes exactly as the uninterrupted one would,
whatever else consumed the global generator in between.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2


class BatchMix:
    """MixUp (Zhang et al. 2018) and/or CutMix (Yun et al. 2019) on ``(images, labels)`` batches.

    With both on, each batch gets one of the two at random with equal probability, as
    torchvision's reference scripts do (``v2.RandomChoice([MixUp, CutMix])``).

    Args:
        num_classes: Number of classes, for the one-hot targets.
        mixup_alpha: Beta(alpha, alpha) parameter of MixUp's weight; 0 turns MixUp off.
        cutmix_alpha: Beta(alpha, alpha) parameter of CutMix's area; 0 turns CutMix off.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0) -> None:
        ops = []
        if mixup_alpha > 0:
            ops.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            ops.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        if not ops:
            raise ValueError("BatchMix needs mixup_alpha > 0 or cutmix_alpha > 0")
        self.transform = ops[0] if len(ops) == 1 else v2.RandomChoice(ops)

    def __call__(self, images: Tensor, labels: Tensor, key: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Mix a batch: ``(N, C, H, W)`` images and ``(N,)`` labels to images and ``(N, K)`` soft targets summing to 1.

        Args:
            images: The batch.
            labels: Its class indices.
            key: Non-negative integers naming the batch; the same key mixes the same way.
        """
        state = np.random.SeedSequence(list(key)).generate_state(2, np.uint32)
        # fork_rng(devices=[]) saves and restores only the CPU generator, the one torchvision draws from;
        # default_generator.manual_seed (not torch.manual_seed) leaves the CUDA generators alone.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(state[0]) << 32 | int(state[1]))
            images, targets = self.transform(images, labels)
        return images, targets
