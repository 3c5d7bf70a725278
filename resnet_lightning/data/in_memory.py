"""Datasets held in memory as tensors: the arrays of MNIST and CIFAR, their seeded split, and what ``on_device`` moves."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from resnet_lightning.data.errors import DataConfigError


class ArrayDataset(Dataset):
    """Images held in memory as one uint8 tensor, transformed one sample at a time.

    Args:
        images: ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` int64.
        transform: Applied to each ``(C, H, W)`` uint8 image; it must return float32.
    """

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor]) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels; they must pair up one to one")
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def split_indices(n: int, holdout: int, seed: int) -> tuple[Tensor, Tensor]:
    """Shuffle ``range(n)`` with ``seed`` and cut off the last ``holdout`` indices.

    Returns:
        ``(kept, held_out)``, each sorted so datasets keep the on-disk order.
    """
    if not 0 <= holdout < n:
        raise DataConfigError(
            f"val_size={holdout} must be between 0 and {n - 1}: the training file holds {n} images "
            f"and at least one must stay for training"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n - holdout].sort().values, order[n - holdout :].sort().values


def in_memory_tensors(dataset: Dataset, split: str, owner: str) -> tuple[Tensor, Tensor]:
    """The whole ``(images, labels)`` of an in-memory dataset, for ``on_device``."""
    if isinstance(dataset, ArrayDataset):
        return dataset.images, dataset.labels
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return dataset.tensors[0], dataset.tensors[1]
    raise DataConfigError(
        f"on_device=True needs the {split} set in memory as tensors (an ArrayDataset or a TensorDataset of images "
        f"and labels), but {owner} made a {type(dataset).__name__}; set on_device=False (--data.on_device false)"
    )
