"""LightningDataModules, one per dataset family, all yielding ``(images, labels)``.

Images are float32 ``(N, C, H, W)``, normalised; labels are int64 ``(N,)``. Each
DataModule sets ``num_classes`` and ``in_channels`` in ``__init__``, which the CLI
links into the model. Problems with the data on disk raise :class:`DataError`,
whose message names the path and what to do. With ``on_device=True`` the small
datasets live on the training device and are batched there (:class:`DeviceBatches`).
"""

from resnet_lightning.data.arrays import ArrayDataModule
from resnet_lightning.data.base import BaseDataModule
from resnet_lightning.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from resnet_lightning.data.device import (
    BatchAugment,
    DeviceBatches,
    EpochSampler,
    RandomCropFlip,
)
from resnet_lightning.data.digits import DigitsDataModule
from resnet_lightning.data.errors import DataConfigError, DataError
from resnet_lightning.data.image_files import ImageFilesDataModule
from resnet_lightning.data.image_folder import ImageFolderDataModule
from resnet_lightning.data.imagenet import ImageNetDataModule
from resnet_lightning.data.mnist import MNISTDataModule

__all__ = [
    "ArrayDataModule",
    "BaseDataModule",
    "BatchAugment",
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "DataConfigError",
    "DataError",
    "DeviceBatches",
    "DigitsDataModule",
    "EpochSampler",
    "ImageFilesDataModule",
    "ImageFolderDataModule",
    "ImageNetDataModule",
    "MNISTDataModule",
    "RandomCropFlip",
]
