"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 60,000 32x32 colour images, from the python pickles.

Why our own reader instead of ``torchvision.datasets.CIFAR10``: torchvision accepts a
file only if its md5 equals the official release's, and answers every other case,
missing or damaged or merely re-encoded, with the same "Dataset not found or
corrupted". The md5s are checked where they protect something: on download, where
torchvision verifies the archive and every extracted file. At load time we check
what the model relies on instead (the dict keys, ``(N, 3072)`` uint8, one label per
image, labels in range), which still catches a truncated or foreign file and names
it, and accepts any correct copy of the documented format
(https://www.cs.toronto.edu/~kriz/cifar.html), including the small ones the tests
write. The files are pickles, and unpickling can run code, so the reader allows only
the numpy calls an array needs (``_ArraysOnlyUnpickler``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision import datasets
from torchvision.transforms import v2
from typing_extensions import override

from resnet_lightning.data.arrays import ArrayDataModule
from resnet_lightning.data.augment import BatchCompose
from resnet_lightning.data.checks import check_labels
from resnet_lightning.data.device import RandomCropFlip
from resnet_lightning.data.errors import DataError
from resnet_lightning.data.transforms import (
    batch_augments,
    check_policy_options,
    train_transform,
)

# Per-channel mean and standard deviation of the 50,000 training images' pixels in [0, 1].
# (The often-copied CIFAR-10 std (0.2023, 0.1994, 0.2010) is something else: a mean of per-image stds.)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
PADDING = 4  # zero pixels around each training image before the random 32x32 crop (He et al. 2015)


class CIFAR10DataModule(ArrayDataModule):
    """CIFAR-10 as ``(N, 3, 32, 32)`` float32, normalised per channel; 10 classes.

    Files are torchvision's layout: ``data_dir/cifar-10-batches-py/`` with
    ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``. The
    validation set is ``val_size`` images drawn (by ``seed``) from the 50,000 training
    images, 45k/5k as in He et al. 2015 (Sec. 4.2); the 10,000 test images are the
    test set. Training images are augmented as in that paper: 4 pixels of zero
    padding on each side, a random 32x32 crop, a random horizontal flip. Validation
    and test images are only normalised. With ``on_device`` the 60,000 images (184 MB
    as uint8) live on the training device and are cropped and flipped there, a batch
    at a time (:class:`~resnet_lightning.data.device.RandomCropFlip`), as the fastest
    CIFAR-10 trainers do. ``auto_augment`` and ``random_erasing`` add the modern
    recipe's policy (after crop and flip) and erasing (last), per image; with
    ``on_device`` as per-image batch operations (``data/augment.py``).

    Args:
        auto_augment: ``trivialaugment``, ``randaugment``, ``autoaugment`` (torchvision's
            ImageNet policy) or ``none`` (see ``data/transforms.py``).
        random_erasing: Probability of erasing a random rectangle of each training image; 0 is off.
        **kwargs: ``ArrayDataModule``'s options (``data_dir``, the directory containing
            ``cifar-10-batches-py/``; ``download``; ``val_size``; ``seed``) and
            ``BaseDataModule``'s loader options (``batch_size``, ``num_workers``, ``on_device``, ...).
    """

    folder_name = "cifar-10-batches-py"
    train_files: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files: tuple[str, ...] = ("test_batch",)
    meta_file, names_key, labels_key = "batches.meta", "label_names", "labels"
    files = (*train_files, *test_files, meta_file)
    mean, std = CIFAR10_MEAN, CIFAR10_STD
    _torchvision_class: type[datasets.CIFAR10] = datasets.CIFAR10
    _num_classes = 10

    def __init__(self, auto_augment: str = "none", random_erasing: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_policy_options(auto_augment, random_erasing)
        self.num_classes = self._num_classes
        self.in_channels = 3
        self.class_names: list[str] | None = None  # read from the meta file by setup()
        to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        crop = [v2.RandomCrop(32, padding=PADDING), v2.RandomHorizontalFlip()]
        self.train_transform = train_transform(crop, self.mean, self.std, auto_augment, random_erasing)
        self.eval_transform = v2.Compose(to_float)
        # The same, for whole batches: one crop-and-flip gather, then the per-image policy and erasing.
        extra = batch_augments(auto_augment, random_erasing, (32, 32), self.mean)
        self.device_augment = BatchCompose([RandomCropFlip(padding=PADDING), *extra]) if extra else RandomCropFlip(padding=PADDING)

    @override
    def _download(self, root: Path) -> None:
        # Downloads and md5-checks the archive and the extracted files under ``root``;
        # the archive stays behind in the scratch directory and is deleted with it.
        self._torchvision_class(str(root), train=True, download=True)

    @override
    def load_arrays(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        train = [self._read_batch(self.folder / name) for name in self.train_files]
        test = [self._read_batch(self.folder / name) for name in self.test_files]
        self.class_names = self._read_class_names(self.folder / self.meta_file)
        return (
            torch.cat([images for images, _ in train]),
            torch.cat([labels for _, labels in train]),
            torch.cat([images for images, _ in test]),
            torch.cat([labels for _, labels in test]),
        )

    def _read_batch(self, path: Path) -> tuple[Tensor, Tensor]:
        """One pickle batch as ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` int64 labels."""
        batch = self._unpickle(path, ("data", self.labels_key))
        data, labels = batch["data"], batch[self.labels_key]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            found = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DataError(
                f"{path}: 'data' must be a uint8 array of shape (N, 3072), found {found}. {self._redownload}"
            )
        if len(labels) != len(data):
            raise DataError(f"{path} has {len(data)} images but {len(labels)} labels. {self._redownload}")
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        check_labels(labels, self.num_classes, path)
        # Each row is channel-major: 1024 red, then 1024 green, then 1024 blue values.
        return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels  # (N, 3072) -> (N, 3, 32, 32)

    def _read_class_names(self, path: Path) -> list[str]:
        names = self._unpickle(path, (self.names_key,))[self.names_key]
        if len(names) != self.num_classes:
            raise DataError(
                f"{path} lists {len(names)} {self.names_key!r}, expected {self.num_classes}. {self._redownload}"
            )
        return [str(name) for name in names]

    def _unpickle(self, path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
        """Load one pickle, turning every way it can fail into a ``DataError`` naming ``path``."""
        try:
            with open(path, "rb") as f:
                # latin1: the official files were pickled by Python 2, whose str is bytes.
                entry: Any = _ArraysOnlyUnpickler(f, encoding="latin1").load()
        except Exception as err:  # truncated (EOFError), garbage (UnpicklingError), ...: all mean "corrupt"
            raise DataError(
                f"{path} could not be read as a CIFAR pickle ({type(err).__name__}: {err}); it looks truncated "
                f"or corrupt. {self._redownload}"
            ) from None
        if not isinstance(entry, dict) or any(key not in entry for key in keys):
            found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise DataError(
                f"{path} is not a {self.folder_name} file: expected a dict with {', '.join(map(repr, keys))}, "
                f"found {found}. {self._redownload}"
            )
        return entry

    @property
    def _redownload(self) -> str:
        return f"Delete it (or all of {self.folder}) and download again with --data.download true"


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 as ``(N, 3, 32, 32)`` float32, normalised per channel; 100 classes.

    Files are torchvision's layout: ``data_dir/cifar-100-python/`` with ``train``,
    ``test`` and ``meta``; labels are the ``fine_labels`` (the 20 coarse superclasses
    are not used). Split and augmentation are as for CIFAR-10; the normalisation
    uses CIFAR-100's own statistics.

    Args:
        **kwargs: As for ``CIFAR10DataModule``; ``data_dir`` contains ``cifar-100-python/``.
    """

    folder_name = "cifar-100-python"
    train_files = ("train",)
    test_files = ("test",)
    meta_file, names_key, labels_key = "meta", "fine_label_names", "fine_labels"
    files = (*train_files, *test_files, meta_file)
    mean, std = CIFAR100_MEAN, CIFAR100_STD
    _torchvision_class = datasets.CIFAR100
    _num_classes = 100


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    Official files (numpy 1, Python 2) name ``numpy.core.multiarray``; files written by
    numpy 2 name ``numpy._core``, where the old name is a deprecated alias.
    ``_codecs.encode`` is how protocol-2 pickles from Python 3 spell bytes.
    """

    _allowed = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    @override
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core."):
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR file only holds arrays")
        if module.startswith("numpy._core.") and not _NUMPY_2:
            module = "numpy.core." + module.removeprefix("numpy._core.")
        return super().find_class(module, name)


_NUMPY_2 = int(np.__version__.split(".")[0]) >= 2
