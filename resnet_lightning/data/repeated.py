"""Repeated augmentation: each image several times per epoch, each copy augmented differently.

Hoffer et al. 2020 ("Augment your batch") and Berman et al. 2019 put a few copies of each
image, differently augmented, in the same step; DeiT and "ResNet strikes back" (Wightman
et al. 2021, 3 repeats) train with it under DDP. The semantics are timm's
``RepeatAugSampler`` and torchvision's reference ``RASampler``: the epoch's permutation with
each index repeated ``repeats`` times in a row (``[a, a, a, b, b, b, ...]``), padded with its
start to a multiple of the world size, and dealt round-robin, so the copies of an image go to
``repeats`` different ranks. Each rank then keeps only the first
``floor(N // 256 * 256 / world_size)`` of its samples, so an epoch is about as long as without
repetition: each rank sees about ``N / world_size / repeats`` different images, ``repeats``
times over the ranks.

The permutation comes from ``(seed, epoch)`` as in :class:`EpochSampler` (timm seeds it with
the epoch alone), so a resumed epoch draws the same order; each copy has its own position
in the epoch, hence its own augmentation seed (:class:`~resnet_lightning.data.resumable.SeededSampler`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from resnet_lightning.data.device import EpochSampler

SELECTED_ROUND = 256  # timm's and torchvision's default: keep a multiple of 256 samples over all ranks


class RepeatedAugmentationSampler(EpochSampler):
    """:class:`EpochSampler` whose order repeats each image ``repeats`` times (timm ``RepeatAugSampler``).

    Args:
        num_samples: Size of the dataset.
        repeats: Copies of each image per epoch, over all ranks (3 in "ResNet strikes back").
        shuffle: A new permutation each epoch; otherwise the dataset order.
        seed: Shared by all ranks.
        rank: This process's rank.
        world_size: Number of processes.
        selected_round: Each rank keeps ``floor(num_samples // selected_round * selected_round
            / world_size)`` samples; 0 keeps ``ceil(num_samples / world_size)``. A dataset smaller
            than ``selected_round`` is treated as 0 (timm would keep no sample at all).
    """

    def __init__(
        self,
        num_samples: int,
        *,
        repeats: int = 3,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        selected_round: int = SELECTED_ROUND,
    ) -> None:
        super().__init__(num_samples, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size, pad=True)
        if repeats < 1:
            raise ValueError(f"repeats={repeats} must be 1 or more")
        self.repeats = repeats
        if selected_round and num_samples >= selected_round:
            self.selected = num_samples // selected_round * selected_round // world_size
        else:
            self.selected = math.ceil(num_samples / world_size)

    @property
    def total_size(self) -> int:
        """Length of the repeated global order, padded to a multiple of ``world_size``."""
        return math.ceil(self.num_samples * self.repeats / self.world_size) * self.world_size

    def __len__(self) -> int:
        return self.selected

    def order(self) -> Tensor:
        """The permutation with each index ``repeats`` times in a row, padded with its start; ``(total_size,)``."""
        order = torch.repeat_interleave(super().order()[: self.num_samples], self.repeats)  # (N * repeats,)
        padding = self.total_size - len(order)
        return torch.cat([order, order[:padding]]) if padding > 0 else order

    def positions(self) -> Tensor:
        """This rank's first ``len(self)`` positions of ``rank, rank + world_size, ...``."""
        return super().positions()[: self.selected]
