"""scikit-learn's handwritten digits: 1,797 8x8 images that ship with scikit-learn, so it runs offline."""

from __future__ import annotations

import math
from typing import Any

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import TensorDataset
from typing_extensions import override

from resnet_lightning.data.base import BaseDataModule
from resnet_lightning.data.errors import DataConfigError

Split = tuple[Tensor, Tensor]  # images (N, 1, 8, 8) float32, labels (N,) int64


class DigitsDataModule(BaseDataModule):
    """scikit-learn's digits (UCI optdigits test set) as ``(N, 1, 8, 8)`` float32, normalised.

    The 1,797 images (pixel values 0..16, 10 classes) are split into train, validation
    and test sets, stratified by class so each set has every digit in the same
    proportion, and reproducibly by ``seed``. Pixels are standardised with the
    training set's mean and standard deviation. Everything lives in memory as
    tensors; there is no download and no augmentation. The offline default of the CLI.

    Args:
        val_fraction: Fraction of all images used for validation; 0 for none.
        test_fraction: Fraction of all images used for testing.
        seed: Seed for the train/val/test split (independent of the global training
            seed, so changing that does not move images between the sets).
        batch_size: Samples per batch, per device.
        num_workers: Loader worker processes; 0 (the default) loads in the main process,
            which is fastest for tensors already in memory.
        **kwargs: ``BaseDataModule``'s other loader options (``pin_memory``,
            ``persistent_workers``, ``on_device``).
    """

    def __init__(
        self,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 42,
        batch_size: int = 64,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, **kwargs)
        if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise DataConfigError(
                f"val_fraction={val_fraction} and test_fraction={test_fraction} must be fractions of the data "
                "(val_fraction in [0, 1), test_fraction in (0, 1)) that leave some for training, e.g. 0.1 and 0.2"
            )
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.num_classes = 10
        self._split_sizes(len(load_digits().target))  # too small a split fails here, before a Trainer starts
        self.in_channels = 1
        self.class_names = [str(digit) for digit in range(10)]
        self.mean: float | None = None  # the training set's, set by setup()
        self.std: float | None = None

    def load_arrays(self) -> dict[str, Split]:
        """The raw split: ``{"train", "val", "test"}`` -> (images 0..16, labels), not normalised."""
        images, labels = load_digits(return_X_y=True)
        images = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8)  # (1797, 64) -> (N, 1, 8, 8)
        labels = torch.as_tensor(labels, dtype=torch.int64)
        n = len(labels)
        n_test, n_val = self._split_sizes(n)
        indices = torch.arange(n).numpy()
        rest, test = train_test_split(indices, test_size=n_test, stratify=labels, random_state=self.seed)
        if n_val:
            train, val = train_test_split(rest, test_size=n_val, stratify=labels[rest], random_state=self.seed)
        else:
            train, val = rest, rest[:0]
        # Sorted, so each set keeps scikit-learn's order and only membership depends on the seed.
        return {
            name: (images[torch.as_tensor(idx).sort().values], labels[torch.as_tensor(idx).sort().values])
            for name, idx in (("train", train), ("val", val), ("test", test))
        }

    def _split_sizes(self, n: int) -> tuple[int, int]:
        """``(n_test, n_val)`` of ``n`` images; a ``DataConfigError`` if a held-out set cannot hold every class."""
        n_test, n_val = round(self.test_fraction * n), round(self.val_fraction * n)
        for name, count in (("test_fraction", n_test), ("val_fraction", n_val)):
            # A stratified split needs one image of every class in each held-out set.
            if 0 < count < self.num_classes or (name == "test_fraction" and count == 0):
                smallest = math.ceil((self.num_classes - 0.5) / n * 1000) / 1000
                raise DataConfigError(
                    f"{name}={getattr(self, name)} gives {count} of {n} images; a stratified split needs at "
                    f"least {self.num_classes} (one per class): use --data.{name} {smallest} or more"
                    + (", or 0 for no validation set" if name == "val_fraction" else "")
                )
        return n_test, n_val

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        splits = self.load_arrays()
        # One mean and std over all training pixels (not per pixel: the border pixels
        # are almost always 0, and dividing by their tiny std would blow up noise).
        train_images = splits["train"][0]
        self.mean, self.std = train_images.mean().item(), train_images.std().item()
        self.train_set, self.val_set, self.test_set = (
            TensorDataset((images - self.mean) / self.std, labels) for images, labels in splits.values()
        )
