"""What every DataModule over image files shares: sizes, augmentation, transforms, and the dataset.

``ImageFilesDataModule`` is the one place for the options and transforms of datasets
read from image files (sizes, FixRes, augmentation policy, random erasing):
``ImageNetDataModule`` and ``ImageFolderDataModule`` both take them from it, so an
option added here reaches both. :class:`ImageFiles` is the dataset over a list of
files. How files are listed (each real file once) and read (any format and mode, to
RGB or L) is ``data/images.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from typing_extensions import override

from resnet_lightning.console import tell
from resnet_lightning.data.base import BaseDataModule
from resnet_lightning.data.errors import DataConfigError
from resnet_lightning.data.images import PREPROCESS_RULES, ImageDecodeError, load_image
from resnet_lightning.data.transforms import (
    check_fixres_sizes,
    check_policy_options,
    imagenet_eval_transform,
    imagenet_train_transform,
)


class ImageFilesDataModule(BaseDataModule):
    """What DataModules over image files share: the input sizes, augmentation and the two transforms.

    Training: RandomResizedCrop(``train_crop_size``) and a horizontal flip (torchvision's
    ResNet recipe), the ``auto_augment`` policy, normalisation, ``random_erasing``.
    Evaluation: the shorter side resized to ``eval_resize_size``, the centre
    ``eval_crop_size`` crop, normalisation (see ``data/transforms.py``). A subclass calls
    :meth:`build_transforms` with its mean and std once it knows them.

    Args:
        image_size: Side of the square images fed to the model; the default of the three sizes below.
        train_crop_size: Training crop side; None: ``image_size``.
        eval_resize_size: Shorter side after the evaluation resize; None: ``eval_crop_size * 256 / 224``.
        eval_crop_size: Evaluation centre-crop side; None: ``image_size``.
        auto_augment: ``trivialaugment``, ``randaugment``, ``autoaugment`` or ``none``.
        random_erasing: Probability of erasing a random rectangle of each training image; 0 is off.
        **kwargs: ``BaseDataModule``'s loader options (``batch_size``, ``num_workers``, ...).
    """

    train_transform: Callable[[Any], Tensor]
    eval_transform: Callable[[Any], Tensor]

    def __init__(
        self,
        image_size: int = 224,
        train_crop_size: int | None = None,
        eval_resize_size: int | None = None,
        eval_crop_size: int | None = None,
        auto_augment: str = "none",
        random_erasing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if image_size < 1:
            raise DataConfigError(f"image_size={image_size} must be a positive number of pixels, e.g. 224")
        self.image_size = image_size
        self.train_crop_size = image_size if train_crop_size is None else train_crop_size
        self.eval_resize_size, self.eval_crop_size = eval_sizes(image_size, eval_resize_size, eval_crop_size)
        check_fixres_sizes(self.train_crop_size, self.eval_resize_size, self.eval_crop_size)
        check_policy_options(auto_augment, random_erasing)
        self.auto_augment = auto_augment
        self.random_erasing = random_erasing

    def build_transforms(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Set ``train_transform`` and ``eval_transform`` for images normalised with ``mean`` and ``std``."""
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.train_transform = imagenet_train_transform(
            self.train_crop_size, self.mean, self.std, self.auto_augment, self.random_erasing
        )
        self.eval_transform = imagenet_eval_transform(self.eval_resize_size, self.eval_crop_size, self.mean, self.std)

    @property
    def _mode(self) -> str:
        return "RGB"  # the PIL mode images are converted to

    def preprocess(self) -> dict[str, Any]:
        """The evaluation transform as plain values (:func:`preprocess_spec`), for the metadata of exports."""
        return preprocess_spec(self._mode, self.eval_resize_size, self.eval_crop_size, self.mean, self.std)

    @override
    def state_dict(self) -> dict[str, Any]:
        # Saved in every checkpoint: an export writes it into the file's metadata.
        return {"preprocess": self.preprocess()} if getattr(self, "mean", None) is not None else {}


def tell_if_far_smaller(paths: Sequence[Path], crop: int, option: str, samples: int = 32) -> None:
    """One line when the images are far smaller than the ``crop`` x ``crop`` they are upsampled to.

    "Far": 4 times the pixels or more (e.g. 32x32 images at the 224 default: 49 times the
    compute of training at their own size). The size is the median over up to ``samples``
    files spread over ``paths``, read from their headers only; unreadable ones are left
    to the loader to report.

    Args:
        paths: The training images.
        crop: The side the model sees.
        option: The option that sets it, with its value, for the message (``--data.image_size 224``).
    """
    sizes = []
    for path in list(paths)[:: max(1, len(paths) // samples)][:samples]:
        try:
            with Image.open(path) as image:
                sizes.append(image.size)  # (W, H)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    if not sizes:
        return
    width, height = sorted(sizes, key=lambda size: size[0] * size[1])[len(sizes) // 2]
    times = crop * crop / (width * height)
    if times >= 4:
        tell(
            f"the training images are about {width}x{height} pixels, far smaller than {option}: each is "
            f"upsampled to {crop}x{crop}, {times:.0f} times the compute of training at their size; "
            f"--data.image_size {max(width, height)} trains at their size"
        )


def eval_sizes(image_size: int, eval_resize_size: int | None = None, eval_crop_size: int | None = None) -> tuple[int, int]:
    """``(resize, crop)`` of the evaluation transform: the crop defaults to ``image_size``, the resize to crop * 256 / 224."""
    crop = image_size if eval_crop_size is None else eval_crop_size
    return (round(crop * 256 / 224) if eval_resize_size is None else eval_resize_size), crop  # He et al. 2015: 256 for 224


def preprocess_spec(mode: str, resize: int, crop: int, mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """The evaluation transform, step by step, as plain values: what an export's user does to an image file.

    ``eval_transform(load_image(path, mode))`` is exactly: the rules of ``data/images.py``
    (``PREPROCESS_RULES``) to ``mode``; the shorter side resized to ``resize`` (the longer
    to ``int(resize * longer / shorter)``) by PIL's bilinear ``Image.resize``; the centre
    ``crop`` x ``crop`` (offsets ``round((resized - crop) / 2)``); pixels / 255; minus
    ``mean``, divided by ``std``, per channel; ``(C, H, W)`` float32.
    """
    return {
        **PREPROCESS_RULES,
        "mode": mode,
        "resize": resize,
        "resize_rule": "shorter side to resize, longer side to int(resize * longer / shorter)",
        "interpolation": "bilinear (PIL Image.resize with Image.BILINEAR, which antialiases)",
        "crop": crop,
        "crop_rule": "centre crop x crop: left = round((width - crop) / 2), top = round((height - crop) / 2)",
        "scale": "pixels / 255",
        "mean": list(mean),
        "std": list(std),
        "layout": "(N, C, H, W) float32, channels in the mode's order",
    }


class ImageFiles(Dataset):
    """``(image, label)`` from a list of image files; ``paths`` names them (predictions use it).

    Args:
        paths: Image files.
        labels: Class index of each; -1 for unlabelled images (prediction).
        transform: PIL image to tensor.
        mode: PIL mode the images are converted to (``"RGB"`` or ``"L"``).
        report_unreadable: Instead of raising :class:`ImageDecodeError` for a file that
            cannot be read, yield ``(blank image, label, what is wrong)``; readable files
            then yield ``(image, label, "")``. For prediction: every file gets a row.
    """

    def __init__(
        self, paths: Sequence[Path], labels: Sequence[int], transform: Callable[[Any], Tensor], mode: str = "RGB",
        report_unreadable: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.labels = list(labels)
        self.transform = transform
        self.mode = mode
        self.report_unreadable = report_unreadable

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int] | tuple[Tensor, int, str]:
        if not self.report_unreadable:
            return self.transform(load_image(self.paths[index], self.mode)), self.labels[index]
        try:
            return self.transform(load_image(self.paths[index], self.mode)), self.labels[index], ""
        except ImageDecodeError as err:
            blank = self.transform(Image.new(self.mode, (1, 1)))  # the shape of the others; its prediction is dropped
            return blank, self.labels[index], err.problem
