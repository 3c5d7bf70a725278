"""MNIST: 70,000 handwritten digits, 28x28 grey, from torchvision's IDX files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision import datasets
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.transforms import v2
from typing_extensions import override

from resnet_lightning.data.arrays import ArrayDataModule
from resnet_lightning.data.checks import check_labels
from resnet_lightning.data.errors import DataError

# Over the 60,000 training images, the figures every MNIST example uses.
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)

# IDX magic numbers: 0x0000 + type 0x08 (unsigned byte) + number of dimensions.
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049


class MNISTDataModule(ArrayDataModule):
    """MNIST digits (LeCun et al. 1998) as ``(N, 1, 28, 28)`` float32, normalised.

    Files are torchvision's layout: ``data_dir/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``.
    The validation set is ``val_size`` images drawn (by ``seed``) from the 60,000
    training images; the 10,000 test images are the test set. No augmentation.
    With ``on_device`` all 70,000 images (55 MB as uint8) live on the training device.

    Args:
        **kwargs: ``ArrayDataModule``'s options (``data_dir``, the directory containing
            ``MNIST/raw/``; ``download``; ``val_size``; ``seed``) and ``BaseDataModule``'s
            loader options (``batch_size``, ``num_workers``, ``on_device``, ...).
    """

    folder_name = "MNIST"
    files = (
        "raw/train-images-idx3-ubyte",
        "raw/train-labels-idx1-ubyte",
        "raw/t10k-images-idx3-ubyte",
        "raw/t10k-labels-idx1-ubyte",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = 10
        self.in_channels = 1
        self.class_names = list(datasets.MNIST.classes)  # "0 - zero" .. "9 - nine"
        self.train_transform = self.eval_transform = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MNIST_MEAN, MNIST_STD)]
        )

    @override
    def _download(self, root: Path) -> None:
        datasets.MNIST(root, train=True, download=True)

    @override
    def load_arrays(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        arrays: list[Tensor] = []
        for split in ("train", "t10k"):
            image_path = self.folder / "raw" / f"{split}-images-idx3-ubyte"
            label_path = self.folder / "raw" / f"{split}-labels-idx1-ubyte"
            _check_idx(image_path, _IMAGES_MAGIC, ndim=3)
            _check_idx(label_path, _LABELS_MAGIC, ndim=1)
            images, labels = read_image_file(str(image_path)), read_label_file(str(label_path))
            if len(images) != len(labels):
                raise DataError(
                    f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels; "
                    "they come from different downloads. Delete both and download again with --data.download true"
                )
            check_labels(labels, self.num_classes, label_path)
            arrays += [images.unsqueeze(1), labels]  # (N, 28, 28) -> (N, 1, 28, 28)
        return arrays[0], arrays[1], arrays[2], arrays[3]


def _check_idx(path: Path, magic: int, ndim: int) -> None:
    """Check an IDX file's header and size before torchvision reads it.

    torchvision's reader fails on a bad file with a bare ``assert`` or a reshape
    error that names neither the file nor the problem; this check reads only the
    header and the file size, so it costs nothing on good files.
    """
    header_size = 4 * (1 + ndim)
    with open(path, "rb") as f:
        header = f.read(header_size)
    redownload = "Delete it and download again with --data.download true"
    if len(header) < header_size or int.from_bytes(header[:4], "big") != magic:
        raise DataError(
            f"{path} is not an MNIST IDX file (expected magic number {magic} in the first 4 bytes); "
            f"it looks corrupt. {redownload}"
        )
    dims = [int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1)]
    expected, actual = header_size + math.prod(dims), path.stat().st_size
    if actual != expected:
        state = "truncated" if actual < expected else "corrupt (longer than its header says)"
        raise DataError(
            f"{path} looks {state}: its header describes {'x'.join(map(str, dims))} bytes of data "
            f"({expected} bytes in all) but the file has {actual}. {redownload}"
        )
