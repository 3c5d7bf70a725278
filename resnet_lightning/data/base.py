"""What every DataModule here shares: loader settings, and in-memory image arrays.

Two layers, kept apart on purpose:

* ``BaseDataModule`` turns ``train_set`` / ``val_set`` / ``test_set`` into DataLoaders.
* ``ArrayDataModule`` (MNIST, CIFAR) first *loads arrays* (uint8 images, int64 labels,
  the whole dataset in memory), then *makes datasets* from them. With ``on_device``
  the same arrays go to the accelerator instead, which batches and augments them
  there (``data/device.py``), without touching how files are read.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset
from typing_extensions import override

from resnet_lightning.data.device import BatchAugment, DeviceBatches, EpochSampler
from resnet_lightning.data.errors import DataConfigError, DataError
from resnet_lightning.data.resumable import ResumableDataLoader, SeededDataset, SeededSampler
from resnet_lightning.data.staging import stage_into_place


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
            images, labels = _tensors(dataset, split, type(self).__name__)
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
        return EpochSampler(
            num_samples,
            shuffle=shuffle,
            seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),  # what Lightning's DistributedSampler uses
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            pad=pad,
        )

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


def _tensors(dataset: Dataset, split: str, owner: str) -> tuple[Tensor, Tensor]:
    """The whole ``(images, labels)`` of an in-memory dataset, for ``on_device``."""
    if isinstance(dataset, ArrayDataset):
        return dataset.images, dataset.labels
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return dataset.tensors[0], dataset.tensors[1]
    raise DataConfigError(
        f"on_device=True needs the {split} set in memory as tensors (an ArrayDataset or a TensorDataset of images "
        f"and labels), but {owner} made a {type(dataset).__name__}; set on_device=False (--data.on_device false)"
    )


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


def check_readable(*paths: Path) -> None:
    """Raise a ``DataError`` naming the first of ``paths`` that exists but this user may not read.

    Without it an unreadable directory looks empty ("not found") and an unreadable
    file looks corrupt, and the fix for either is not to download again.
    """
    for path in paths:
        mode = os.R_OK | os.X_OK if path.is_dir() else os.R_OK
        if os.path.lexists(path) and not os.access(path, mode):
            raise DataError(
                f"{path} is not readable by this user (permission denied); give it read access "
                f"(chmod -R a+rX {path}) or point --data.data_dir at a readable copy"
            )


def check_labels(labels: Tensor, num_classes: int, source: Path) -> None:
    """Raise a ``DataError`` naming ``source`` if a label is outside ``[0, num_classes)``."""
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise DataError(
            f"{source} has label {int(labels[bad][0])} at position {int(bad.nonzero()[0])}, but labels must be "
            f"in 0..{num_classes - 1}; the file is corrupt or belongs to another dataset. "
            "Delete it and download again with --data.download true"
        )


class ArrayDataModule(BaseDataModule):
    """A torchvision-downloadable dataset small enough to hold in memory (MNIST, CIFAR).

    Subclasses describe the files (``folder_name``, ``files``), how to fetch them
    (``_download``), how to read them (``load_arrays``) and the per-sample
    ``train_transform`` / ``eval_transform``. This class does the rest: the download
    that never leaves a half-written folder, the clear error when files are missing,
    the seeded train/val split, and the datasets.

    With ``on_device`` the uint8 arrays go to the device as they are, and each batch
    gets ``device_augment`` (training only) and then ``eval_transform``, which turns
    uint8 into normalised float32 for a batch as for one image. So ``train_transform``
    must be ``device_augment``'s per-sample equivalent followed by ``eval_transform``.

    Args:
        data_dir: Directory holding ``folder_name``.
        download: Fetch the dataset into ``data_dir`` in ``prepare_data`` if it is missing.
        val_size: Images moved from the training file into the validation set.
        seed: Seed for the train/val split (independent of the global training seed,
            so changing that does not move images between the two sets).
        **kwargs: Loader options for ``BaseDataModule`` (``batch_size``, ``num_workers``, ...).
    """

    folder_name: str
    files: Sequence[str]
    train_transform: Callable[[Tensor], Tensor]
    eval_transform: Callable[[Tensor], Tensor]

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = False,
        val_size: int = 5000,
        seed: int = 42,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if val_size < 0:
            raise DataConfigError(f"val_size={val_size} must be 0 (no validation set) or more")
        self.data_dir = Path(data_dir).expanduser()
        check_readable(self.data_dir)
        self.download = download
        self.val_size = val_size
        self.seed = seed

    @property
    def folder(self) -> Path:
        """Where the dataset's files live: ``data_dir / folder_name``."""
        return self.data_dir / self.folder_name

    def missing_files(self) -> list[str]:
        """The expected files (relative to ``folder``) that are not there."""
        return [name for name in self.files if not (self.folder / name).is_file()]

    @override
    def batch_transform(self, images: Tensor) -> Tensor:
        return self.eval_transform(images)  # (B, C, H, W) uint8 -> float32, normalised

    @abstractmethod
    def _download(self, root: Path) -> None:
        """Download into ``root``, leaving the finished dataset at ``root / folder_name``."""

    @abstractmethod
    def load_arrays(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Read ``folder``: train images, train labels, test images, test labels.

        Images are uint8 ``(N, C, H, W)``, labels int64 ``(N,)``. Raises ``DataError``
        naming the file when one is truncated or corrupt.
        """

    @override
    def check_available(self) -> None:
        if not self.download:
            check_readable(self.data_dir, self.folder)
            self._raise_if_missing()

    def _raise_if_missing(self) -> None:
        """A :class:`DataError` naming the files that are not there and the two ways to get them."""
        missing = self.missing_files()
        if missing:
            hint = (
                "the download did not produce them; delete the folder and try again"
                if self.download
                else "pass download=True (--data.download true) to fetch them"
            )
            raise DataError(
                f"{self.folder_name} not found: {self.folder} is missing {', '.join(missing)}. "
                f"Either {hint}, or point data_dir (--data.data_dir) at the directory that contains "
                f"{self.folder_name}{os.sep}"
            )

    @override
    def prepare_data(self) -> None:
        check_readable(self.data_dir, self.folder)
        missing = self.missing_files()
        if not self.download or not missing:
            return
        if self.folder.exists():
            # Not ours: our downloads appear complete or not at all. Downloading over
            # it would mix two copies, so let the user decide what it is.
            raise DataError(
                f"{self.folder} exists but is incomplete (missing {', '.join(missing)}). It was not written by "
                f"a finished download; delete it and run again to download a fresh copy into {self.data_dir}"
            )
        try:
            stage_into_place(self.folder, self._download)
        except Exception as err:
            raise DataError(
                f"downloading {self.folder_name} into {self.data_dir} failed ({type(err).__name__}: {err}); nothing "
                f"was written to {self.folder}. Check the network, or fetch the files on another machine and copy "
                f"them to {self.folder} ({', '.join(self.files)})"
            ) from err

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return  # loaded for an earlier stage; the arrays cover all of them
        check_readable(self.data_dir, self.folder, *(self.folder / name for name in self.files))
        self._raise_if_missing()
        train_images, train_labels, test_images, test_labels = self.load_arrays()
        kept, held_out = split_indices(len(train_labels), self.val_size, self.seed)
        self.train_set = ArrayDataset(train_images[kept], train_labels[kept], self.train_transform)
        # The validation images come out of the training file but are evaluated like
        # test images: eval_transform, never the training augmentation.
        self.val_set = ArrayDataset(train_images[held_out], train_labels[held_out], self.eval_transform)
        self.test_set = ArrayDataset(test_images, test_labels, self.eval_transform)
