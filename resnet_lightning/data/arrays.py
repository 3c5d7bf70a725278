"""A torchvision-downloadable dataset small enough to hold in memory (MNIST, CIFAR): ``ArrayDataModule``.

It first *loads arrays* (uint8 images, int64 labels, the whole dataset in memory),
then *makes datasets* from them (``data/in_memory.py``). With ``on_device`` the same
arrays go to the accelerator instead, which batches and augments them there
(``data/device.py``), without touching how files are read.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor
from typing_extensions import override

from resnet_lightning.data.base import BaseDataModule
from resnet_lightning.data.checks import check_readable
from resnet_lightning.data.errors import DataConfigError, DataError
from resnet_lightning.data.in_memory import ArrayDataset, split_indices
from resnet_lightning.data.staging import stage_into_place


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
