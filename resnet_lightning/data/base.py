"""What every DataModule here shares: the loader settings, and DataLoaders (or on-device batches) over its sets.

``BaseDataModule`` turns ``train_set`` / ``val_set`` / ``test_set`` into DataLoaders.
``ArrayDataModule`` (MNIST, CIFAR; ``data/arrays.py``) builds on it for datasets held
in memory (``data/in_memory.py``); ``ImageFilesDataModule`` (``data/image_files.py``)
for datasets read from image files.
"""

from __future__ import annotations

import os

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from resnet_lightning.data.device import BatchAugment, DeviceBatches, EpochSampler
from resnet_lightning.data.errors import DataConfigError, DataError
from resnet_lightning.data.in_memory import in_memory_tensors
from resnet_lightning.data.repeated import RepeatedAugmentationSampler
from resnet_lightning.data.resumable import (
    ResumableDataLoader,
    SeededDataset,
    SeededSampler,
)


class BaseDataModule(LightningDataModule):
    """DataLoaders over ``train_set``, ``val_set`` and ``test_set``, which ``setup`` fills.

    Subclasses set ``num_classes`` and ``in_channels`` in ``__init__`` (the CLI links
    them into the model before ``setup`` runs) and build the three datasets in ``setup``.
    Predicting uses the test set.

    The training loader is a :class:`ResumableDataLoader`: its order and each sample's
    augmentation come from ``PL_GLOBAL_SEED`` and the epoch (as for ``on_device`` below),
    and it saves its place in the epoch in checkpoints, so a fit stopped mid-epoch
    resumes at the exact batch, with any ``num_workers``.

    With ``on_device=True`` the loaders are :class:`DeviceBatches` instead: each set is
    moved to ``trainer.strategy.root_device`` (the CPU without a trainer) once, and
    batches are drawn, augmented (``device_augment``, training only) and normalised
    (``batch_transform``) there. Under DDP each rank takes its own shard, padded as
    Lightning's ``DistributedSampler`` pads for training, validation and testing, and
    not for prediction (its ``UnrepeatedDistributedSampler``). The training order and
    augmentation come from ``PL_GLOBAL_SEED`` (set by ``seed_everything``; 0 if unset,
    as for Lightning's own DDP sampler) and the epoch, never from the global RNG.

    Subclasses take their own options and pass the rest on with ``**kwargs``
    (``super().__init__(**kwargs)``): jsonargparse follows that call, so ``--data.batch_size``
    and the others below reach the command line, with this docstring as their help.
    A subclass that needs another default names the option and passes it on.

    Args:
        batch_size: Samples per batch, per device.
        num_workers: Loader worker processes; 0 loads in the main process. Ignored with ``on_device``.
        pin_memory: Page-locked host memory for faster copies to a GPU. ``None`` means
            "when CUDA is available". Ignored with ``on_device``.
        persistent_workers: Keep workers alive between epochs. ``None`` means "when
            ``num_workers > 0``" (it is an error without workers). Ignored with ``on_device``.
        on_device: Hold each set on the training device and batch it there, instead of
            DataLoaders. For datasets that fit in device memory (MNIST, CIFAR).
        repeated_augmentation: Copies of each training image per epoch, each augmented
            differently, spread over the DDP ranks (timm's ``RepeatAugSampler``; 3 in
            "ResNet strikes back"); 1 turns it off. See ``data/repeated.py``.
    """

    num_classes: int
    in_channels: int
    # The random part of the training transform as a batch operation, for on_device.
    device_augment: BatchAugment | None = None

    def __init__(
        self,
        batch_size: int = 128,
        num_workers: int = 4,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        on_device: bool = False,
        repeated_augmentation: int = 1,
    ) -> None:
        super().__init__()
        # Records the whole chain of constructors' arguments: a subclass's own, and the
        # ones it passes on through ``**kwargs``, with their defaults (Lightning reads
        # every ``__init__`` frame up the stack). Subclasses must not call it again: from
        # their frame only the keyword arguments actually given would be seen.
        # logger=False: the CLI logs the whole config (LoggerSaveConfigCallback), and
        # Lightning's merge with the model's hyperparameters fails on a shared key with
        # another value (ImageNet's num_classes=None, the model's 1000).
        self.save_hyperparameters(logger=False)
        if batch_size < 1:
            raise DataConfigError(f"batch_size={batch_size} must be a positive integer, e.g. --data.batch_size 128")
        if num_workers < 0:
            raise DataConfigError(f"num_workers={num_workers} must be 0 (load in the main process) or more")
        if persistent_workers and num_workers == 0 and not on_device:
            raise DataConfigError(
                "persistent_workers=True needs worker processes but num_workers=0; "
                "set --data.num_workers to 1 or more, or leave persistent_workers unset"
            )
        if isinstance(repeated_augmentation, bool) or not isinstance(repeated_augmentation, int) or repeated_augmentation < 1:
            raise DataConfigError(
                f"repeated_augmentation={repeated_augmentation!r} must be a whole number of copies of each training "
                "image per epoch: 1 (off) or more, e.g. --data.repeated_augmentation 3"
            )
        self.repeated_augmentation = repeated_augmentation
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = num_workers > 0 if persistent_workers is None else persistent_workers
        self.on_device = on_device
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        # split -> (the dataset it came from, device, images, labels): moved once, not every epoch.
        self._on_device_cache: dict[str, tuple[Dataset, torch.device, Tensor, Tensor]] = {}

    def batch_transform(self, images: Tensor) -> Tensor:
        """Turn a batch of stored images into model input, for ``on_device``; here they already are."""
        return images

    def _loader(self, dataset: Dataset | None, split: str, shuffle: bool, pad: bool = True) -> DataLoader | DeviceBatches:
        if dataset is None:
            raise DataError(f"{type(self).__name__} has no {split} set yet; call setup() before asking for its loader")
        if self.on_device:
            return self._device_batches(dataset, split, shuffle, pad)
        if shuffle:  # training: Lightning saves this loader's place in the epoch in checkpoints
            return ResumableDataLoader(
                SeededDataset(dataset),
                batch_size=self.batch_size,
                sampler=SeededSampler(self._epoch_sampler(len(dataset), shuffle=True, pad=pad)),
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.persistent_workers,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def _device_batches(self, dataset: Dataset, split: str, train: bool, pad: bool) -> DeviceBatches:
        trainer = self.trainer  # None until a Trainer uses this DataModule
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        cached = self._on_device_cache.get(split)
        if cached is None or cached[0] is not dataset or cached[1] != device:
            images, labels = in_memory_tensors(dataset, split, type(self).__name__)
            cached = (dataset, device, images.to(device), labels.to(device))
            self._on_device_cache[split] = cached
        return DeviceBatches(
            cached[2],
            cached[3],
            batch_size=self.batch_size,
            sampler=self._epoch_sampler(len(dataset), shuffle=train, pad=pad),
            augment=self.device_augment if train else None,
            transform=self.batch_transform,
        )

    def _epoch_sampler(self, num_samples: int, shuffle: bool, pad: bool) -> EpochSampler:
        """This rank's order of each epoch, from ``PL_GLOBAL_SEED`` and the epoch."""
        trainer = self.trainer  # None until a Trainer uses this DataModule
        shard = dict(
            seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),  # what Lightning's DistributedSampler uses
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
        )
        if shuffle and self.repeated_augmentation > 1:  # training only
            return RepeatedAugmentationSampler(num_samples, repeats=self.repeated_augmentation, **shard)
        return EpochSampler(num_samples, shuffle=shuffle, pad=pad, **shard)

    @override
    def train_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self.train_set, "train", shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader | DeviceBatches | list:
        # val_size=0 trains on everything; an empty list tells Lightning to skip
        # validation (it warns once that the list is empty), where a loader over an
        # empty dataset would run zero batches and log nothing, every epoch.
        if self.val_set is not None and len(self.val_set) == 0:
            return []
        return self._loader(self.val_set, "val", shuffle=False)

    @override
    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self.test_set, "test", shuffle=False)

    @override
    def predict_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self.test_set, "test", shuffle=False, pad=False)

    @override
    def teardown(self, stage: str) -> None:
        self._on_device_cache.clear()  # give the device memory back; the host copies stay

    def check_available(self) -> None:
        """Raise :class:`DataError` now if the data cannot be there when ``setup`` runs (nothing to
        download it, no files). Cheap (a few ``stat`` calls): the CLI calls it right after building
        the classes, so a missing dataset is one line before Lightning's notices. This one checks nothing."""
