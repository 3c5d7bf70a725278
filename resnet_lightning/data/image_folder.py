"""Your own images: any folder of class sub-folders, and what every image-file DataModule shares.

``ImageFilesDataModule`` is the one place for the options and transforms of datasets
read from image files (sizes, FixRes, augmentation policy, random erasing):
``ImageNetDataModule`` and ``ImageFolderDataModule`` both take them from it, so an
option added there reaches both. ``ImageFolderDataModule`` reads any tree::

    DIR/train/<class>/*.png   [DIR/val/<class>/...]   [DIR/test/<class>/...]
    DIR/<class>/*.png                                  (split into train/val/test by seed)

``python -m resnet_lightning.data.digit_images DIR`` writes a small such tree of real
images (scikit-learn's digits as PNG files) to try it on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2
from typing_extensions import override

from resnet_lightning.data.base import BaseDataModule
from resnet_lightning.data.errors import DataConfigError, DataError
from resnet_lightning.data.transforms import (
    check_fixres_sizes,
    check_policy_options,
    imagenet_eval_transform,
    imagenet_train_transform,
)

STATS_SAMPLES = 2000  # training images read to compute mean/std (all of them below this)


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
        self.eval_crop_size = image_size if eval_crop_size is None else eval_crop_size
        # 256 for 224, He et al. 2015's single crop
        self.eval_resize_size = round(self.eval_crop_size * 256 / 224) if eval_resize_size is None else eval_resize_size
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


class ImageFiles(Dataset):
    """``(image, label)`` from a list of image files; ``paths`` names them (predictions use it).

    Args:
        paths: Image files.
        labels: Class index of each; -1 for unlabelled images (prediction).
        transform: PIL image to tensor.
        mode: PIL mode the images are converted to (``"RGB"`` or ``"L"``).
    """

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], transform: Callable[[Any], Tensor], mode: str = "RGB") -> None:
        self.paths = list(paths)
        self.labels = list(labels)
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(load_image(self.paths[index], self.mode)), self.labels[index]


class ImageFolderDataModule(ImageFilesDataModule):
    """Any folder of class sub-folders, for fine-tuning on your own images.

    ``data_dir/train/<class>/`` with optional ``val/`` and ``test/`` beside it (each
    class a sub-folder, images at any depth below it); or ``data_dir/<class>/`` alone,
    split per class by ``seed`` into ``val_fraction``, ``test_fraction`` and the rest
    for training. A missing ``val/`` is split off ``train/`` the same way; a missing
    ``test/`` is the validation set. Classes are the sorted folder names; they are
    saved in checkpoints with the normalisation (``state_dict``), so predictions and
    exports name them.

    Args:
        data_dir: The folder.
        val_fraction: Fraction of each class held out for validation when there is no ``val/``.
        test_fraction: Fraction of each class held out for testing when ``data_dir`` is one folder.
        seed: Seed of those splits (independent of the training seed).
        mean: Per-channel mean of the pixels in [0, 1]; None: computed from the training
            images (up to 2,000 of them, at the evaluation size).
        std: Per-channel standard deviation, likewise.
        grayscale: Read the images as one channel (the model's stem is then 1-channel;
            pretrained RGB weights are adapted to it).
        predict_path: A folder (searched recursively) or one image to predict; None: the test set.
        num_classes: None: the number of class folders; if given, it must match them.
        **kwargs: ``ImageFilesDataModule``'s sizes and augmentation (``image_size``,
            ``auto_augment``, ...) and ``BaseDataModule``'s loader options (``batch_size``, ...).
    """

    # val_fraction, test_fraction and seed default as DigitsDataModule's: jsonargparse carries the
    # default DataModule's values of same-named options over to a --data class given on the command line.
    def __init__(
        self,
        data_dir: str = "data/images",
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 42,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        grayscale: bool = False,
        predict_path: str | None = None,
        num_classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise DataConfigError(
                f"val_fraction={val_fraction} and test_fraction={test_fraction} must be fractions in [0, 1) "
                "that leave images for training, e.g. 0.1 and 0.2"
            )
        self.data_dir = Path(data_dir).expanduser()
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.grayscale = grayscale
        self.in_channels = 1 if grayscale else 3
        self.predict_path = None if predict_path is None else Path(predict_path).expanduser()
        if (mean is None) != (std is None) or (mean is not None and not len(mean) == len(std) == self.in_channels):
            raise DataConfigError(
                f"mean={mean} and std={std}: give both, with {self.in_channels} value(s) each "
                f"(one per channel), or neither to compute them from the training images"
            )
        if std is not None and min(std) <= 0:
            raise DataConfigError(f"std={std} must be positive")
        self.split_root = self.data_dir / "train" if (self.data_dir / "train").is_dir() else self.data_dir
        self.class_names: list[str] = class_folders(self.split_root)  # known now: the CLI builds the model from it
        if num_classes is not None and num_classes != len(self.class_names):
            raise DataConfigError(
                f"num_classes={num_classes} but {self.split_root} has {len(self.class_names)} class folders; "
                "leave --data.num_classes unset to use the folders"
            )
        self.num_classes = len(self.class_names)
        self.mean: list[float] | None = None
        self.std: list[float] | None = None
        if mean is not None:
            self.build_transforms(mean, std)
        self.predict_set: ImageFiles | None = None

    @property
    def _mode(self) -> str:
        return "L" if self.grayscale else "RGB"

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        classes = {name: i for i, name in enumerate(self.class_names)}
        splits = {"train": list_images(self.split_root, classes)}
        for split in ("val", "test"):
            if self.split_root != self.data_dir and (self.data_dir / split).is_dir():
                splits[split] = list_images(self.data_dir / split, classes)
        if "val" not in splits:
            splits["train"], splits["val"] = _split(splits["train"], self.val_fraction, self.seed)
        if "test" not in splits:
            if self.split_root == self.data_dir:  # one folder: test is its own share
                splits["train"], splits["test"] = _split(splits["train"], self.test_fraction, self.seed + 1)
            else:
                splits["test"] = splits["val"]
        if not splits["train"]:
            raise DataConfigError(f"val_fraction and test_fraction leave no training image in {self.split_root}")
        if self.mean is None:
            self.build_transforms(*self._statistics([path for path, _ in splits["train"]]))
        sets = {}
        for split, items in splits.items():
            transform = self.train_transform if split == "train" else self.eval_transform
            sets[split] = ImageFiles([p for p, _ in items], [label for _, label in items], transform, self._mode)
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]
        if self.predict_path is not None:
            paths = predict_images(self.predict_path)
            self.predict_set = ImageFiles(paths, [-1] * len(paths), self.eval_transform, self._mode)

    def _statistics(self, paths: list[Path]) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training pixels in [0, 1], after the evaluation resize and crop."""
        if len(paths) > STATS_SAMPLES:
            order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(self.seed))
            paths = [paths[i] for i in order[:STATS_SAMPLES].tolist()]
        to_float = v2.Compose(
            [
                v2.Resize(self.eval_resize_size, antialias=True),
                v2.CenterCrop(self.eval_crop_size),
                v2.ToImage(),
                v2.ToDtype(torch.float64, scale=True),
            ]
        )
        total = torch.zeros(self.in_channels, dtype=torch.float64)
        squares, count = torch.zeros_like(total), 0
        for path in paths:
            x = to_float(load_image(path, self._mode)).flatten(1)  # (C, H*W)
            total += x.sum(1)
            squares += (x * x).sum(1)
            count += x.shape[1]
        mean = total / count
        std = (squares / count - mean**2).clamp(min=1e-12).sqrt()
        return mean.tolist(), std.tolist()

    @override
    def predict_dataloader(self) -> Any:
        if self.predict_set is None:
            return super().predict_dataloader()
        return self._loader(self.predict_set, "predict", shuffle=False, pad=False)

    @override
    def state_dict(self) -> dict[str, Any]:
        # Saved in every checkpoint: predictions and exports name the classes and normalise as in training.
        return {"class_names": list(self.class_names), "mean": self.mean, "std": self.std}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.class_names = list(state_dict["class_names"])  # the model's outputs are the checkpoint's classes
        if state_dict.get("mean") is not None:
            self.build_transforms(state_dict["mean"], state_dict["std"])
            for split in ("train", "val", "test", "predict"):
                dataset = getattr(self, f"{split}_set", None)
                if dataset is not None:
                    dataset.transform = self.train_transform if split == "train" else self.eval_transform


def is_image(name: str) -> bool:
    """Whether a file name has one of the image extensions torchvision's ImageFolder reads."""
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")


def class_folders(folder: Path) -> list[str]:
    """The sorted class sub-folders of ``folder``; a ``DataError`` saying what to do if there are none."""
    if not folder.is_dir():
        raise DataError(
            f"image folder {folder} does not exist; expected {folder}/<class>/<image> or {folder}/train/<class>/<image>. "
            "Point --data.data_dir at it (python -m resnet_lightning.data.digit_images DIR makes one)"
        )
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        loose = sum(1 for entry in os.scandir(folder) if entry.is_file() and is_image(entry.name))
        found = f" (it holds {loose} images directly; move each into a folder named after its class)" if loose else ""
        raise DataError(
            f"{folder} has no class sub-folders{found}; expected {folder}/<class>/<image>, one folder per class"
        )
    return names


def _images_under(folder: Path) -> list[Path]:
    return sorted(Path(root) / name for root, _, names in os.walk(folder, followlinks=True) for name in names if is_image(name))


def list_images(folder: Path, classes: dict[str, int]) -> list[tuple[Path, int]]:
    """``(path, label)`` for every image under ``folder/<class>/``; a class folder without images is an error."""
    unknown = sorted(set(class_folders(folder)) - set(classes))
    if unknown:
        raise DataError(
            f"{folder} has class folders the training set does not: {', '.join(unknown[:5])}; "
            "train/, val/ and test/ must use the same class names"
        )
    items, empty = [], []
    for name, label in classes.items():
        if not (folder / name).is_dir():
            continue  # a val/ or test/ may lack a class
        images = _images_under(folder / name)
        if not images:
            empty.append(str(folder / name))
        items += [(path, label) for path in images]
    if empty:
        raise DataError(
            f"class folder(s) without images ({', '.join(ext.lstrip('.') for ext in IMG_EXTENSIONS[:6])}, ...): "
            f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}; add images or delete the folder"
        )
    return items


def predict_images(path: Path) -> list[Path]:
    """The image files to predict: ``path`` itself, or every image below the folder ``path``."""
    if path.is_file():
        if not is_image(path.name):
            raise DataError(f"--data.predict_path {path} is not an image file ({', '.join(IMG_EXTENSIONS)})")
        return [path]
    if not path.is_dir():
        raise DataError(f"--data.predict_path {path} does not exist; pass an image file or a folder of images")
    images = _images_under(path)
    if not images:
        raise DataError(f"--data.predict_path {path} holds no image files ({', '.join(IMG_EXTENSIONS)})")
    return images


def _split(items: list[tuple[Path, int]], fraction: float, seed: int) -> tuple[list, list]:
    """Hold out ``fraction`` of each class (at least one image if the fraction is > 0), chosen by ``seed``."""
    if fraction == 0:
        return items, []
    generator = torch.Generator().manual_seed(seed)
    kept, held = [], []
    for label in sorted({label for _, label in items}):
        members = [item for item in items if item[1] == label]
        order = torch.randperm(len(members), generator=generator).tolist()
        n = min(max(1, round(fraction * len(members))), len(members) - 1)
        held += [members[i] for i in order[:n]]
        kept += [members[i] for i in order[n:]]
    return sorted(kept), sorted(held)


class ImageDecodeError(DataError):
    """An image file that cannot be decoded; the message names it.

    Raised in a DataLoader worker, torch re-raises it in the main process as
    ``ImageDecodeError("Caught ImageDecodeError in DataLoader worker process 0. Original
    Traceback ...")``; that is cut back to the original message, so the user still reads
    one line naming the file, not a worker's traceback.
    """

    def __init__(self, message: str) -> None:
        if "Original Traceback" in message:
            message = message.rstrip().rsplit(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


def load_image(path: Path, mode: str = "RGB") -> Image.Image:
    """A decoded image in ``mode``; an :class:`ImageDecodeError` naming the file if it cannot be decoded."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert(mode)
    except (OSError, Image.DecompressionBombError) as err:
        raise ImageDecodeError(
            f"{path} could not be decoded as an image ({type(err).__name__}: {err}); it looks truncated or "
            "corrupt. Replace it with a good copy or delete it"
        ) from None
