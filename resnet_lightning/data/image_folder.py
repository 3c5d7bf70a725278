"""Your own images: any folder of class sub-folders.

``ImageFolderDataModule`` reads any tree::

    DIR/train/<class>/*.png   [DIR/val/<class>/...]   [DIR/test/<class>/...]
    DIR/<class>/*.png                                  (split into train/val/test by seed)

``python -m resnet_lightning.data.digit_images DIR`` writes a small such tree of real
images (scikit-learn's digits as PNG files) to try it on. The options and transforms
it shares with ImageNet are ``data/image_files.py``; how files are listed (each real
file once) and read (any format and mode, to RGB or L) is ``data/images.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2
from typing_extensions import override

from resnet_lightning.data.checks import check_readable
from resnet_lightning.data.errors import DataConfigError, DataError
from resnet_lightning.data.image_files import ImageFiles, ImageFilesDataModule, tell_if_far_smaller
from resnet_lightning.data.images import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    can_open,
    class_files,
    folder_names,
    is_image,
    load_image,
    walk_files,
    warn,
    warn_skipped,
)

STATS_SAMPLES = 2000  # training images read to compute mean/std (all of them below this)


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
        for option, value in (("data_dir", data_dir), ("predict_path", predict_path)):
            if value is not None and not str(value).strip():
                wanted = "a folder of class folders" if option == "data_dir" else "an image file or a folder of images"
                raise DataConfigError(f"--data.{option} is empty; give {wanted}")
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
        if len(self.class_names) < 2:
            raise DataError(
                f"{self.split_root} has one class folder ({self.class_names[0]}); a classifier needs at least two, "
                f"one folder per class: {self.split_root}/<class>/<image>"
            )
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
    @override
    def _mode(self) -> str:
        return "L" if self.grayscale else "RGB"

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        classes = {name: i for i, name in enumerate(self.class_names)}
        seen: dict = {}  # (device, inode) -> path, across the splits: a file is in one split only
        skipped: list[str] = []
        splits = {"train": list_images(self.split_root, classes, seen, skipped)}
        for split in ("val", "test"):
            if self.split_root != self.data_dir and (self.data_dir / split).is_dir():
                splits[split] = list_images(self.data_dir / split, classes, seen, skipped)
        warn_skipped(skipped)
        if "val" not in splits:
            splits["train"], splits["val"] = _split(splits["train"], self.val_fraction, self.seed)
        if "test" not in splits:
            if self.split_root == self.data_dir:  # one folder: test is its own share
                splits["train"], splits["test"] = _split(splits["train"], self.test_fraction, self.seed + 1)
            else:
                splits["test"] = splits["val"]
        if not splits["train"]:
            raise DataConfigError(f"val_fraction and test_fraction leave no training image in {self.split_root}")
        if stage in ("fit", None):
            option = "--data.image_size" if self.train_crop_size == self.image_size else "--data.train_crop_size"
            tell_if_far_smaller([path for path, _ in splits["train"]], self.train_crop_size, f"{option} {self.train_crop_size}")
        if self.mean is None:
            self.build_transforms(*self._statistics([path for path, _ in splits["train"]]))
        sets = {}
        for split, items in splits.items():
            transform = self.train_transform if split == "train" else self.eval_transform
            sets[split] = ImageFiles([p for p, _ in items], [label for _, label in items], transform, self._mode)
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]
        if self.predict_path is not None:
            paths = predict_files(self.predict_path, self._mode)
            self.predict_set = ImageFiles(paths, [-1] * len(paths), self.eval_transform, self._mode, report_unreadable=True)

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
        return {**super().state_dict(), "class_names": list(self.class_names), "mean": self.mean, "std": self.std}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.class_names = list(state_dict["class_names"])  # the model's outputs are the checkpoint's classes
        saved = state_dict.get("preprocess") or {}
        sizes = (saved.get("resize"), saved.get("crop"))
        if None not in sizes and sizes != (self.eval_resize_size, self.eval_crop_size):
            # Images are evaluated as in training: the sizes the model was trained for, as the normalisation.
            warn(
                f"evaluating images resized to {sizes[0]} and centre-cropped to {sizes[1]}, as the checkpoint's "
                f"training did, not {self.eval_resize_size} and {self.eval_crop_size} (from --data.image_size / "
                "--data.eval_resize_size / --data.eval_crop_size); pass the options the model was trained with"
            )
            self.eval_resize_size, self.eval_crop_size = sizes
        if state_dict.get("mean") is not None:
            self.build_transforms(state_dict["mean"], state_dict["std"])
            for split in ("train", "val", "test", "predict"):
                dataset = getattr(self, f"{split}_set", None)
                if dataset is not None:
                    dataset.transform = self.train_transform if split == "train" else self.eval_transform


def class_folders(folder: Path) -> list[str]:
    """The sorted class sub-folders of ``folder``; a ``DataError`` saying what to do if there are none."""
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(
            f"image folder {folder} {what}; expected {folder}/<class>/<image> or {folder}/train/<class>/<image>. "
            "Point --data.data_dir at it (python -m resnet_lightning.data.digit_images DIR makes one)"
        )
    check_readable(folder)
    names = [name for name in folder_names(folder) if not name.startswith(".")]  # hidden folders are no class
    if not names:
        loose = sum(1 for entry in os.scandir(folder) if entry.is_file() and is_image(entry.name))
        found = f" (it holds {loose} images directly; move each into a folder named after its class)" if loose else ""
        raise DataError(
            f"{folder} has no class sub-folders{found}; expected {folder}/<class>/<image>, one folder per class"
        )
    return names


def list_images(
    folder: Path, classes: dict[str, int], seen: dict | None = None, skipped: list[str] | None = None
) -> list[tuple[Path, int]]:
    """``(path, label)`` for every image under ``folder/<class>/``, each real file once.

    A class folder without images is an error; other files in class folders are skipped
    with one warning naming them. Links to a file or folder already counted (here or in
    ``seen``) are skipped and noted in ``skipped`` (see :func:`~resnet_lightning.data.images.class_files`).
    """
    unknown = sorted(set(class_folders(folder)) - set(classes))
    if unknown:
        raise DataError(
            f"{folder} has class folders the training set does not: {', '.join(unknown[:5])}; "
            "train/, val/ and test/ must use the same class names"
        )
    found, notes = class_files(folder, classes, lambda n: not n.startswith("."), seen)
    if skipped is not None:
        skipped += notes
    items, empty, others = [], [], []
    for name, files in found.items():
        images = [path for path in files if is_image(path.name)]
        others += [path for path in files if not is_image(path.name)]
        if not images:
            empty.append(str(folder / name))
        items += [(path, classes[name]) for path in images]
    if empty:
        raise DataError(
            "class folder(s) without images (png, jpg, jpeg, gif, bmp, tif, tiff, webp, ...): "
            f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}; add images or delete the folder"
        )
    if others:
        warn(
            f"skipped {len(others)} file(s) in the class folders of {folder} that are not images by their extension "
            f"({', '.join(map(str, others[:3]))}{' ...' if len(others) > 3 else ''}); images end in "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        )
    return items


def predict_files(path: Path, mode: str = "RGB") -> list[Path]:
    """The files to predict: ``path`` itself (it must be an image), or every file below the folder ``path``.

    Every (non-hidden) file in the folder is listed, whatever its extension: each gets
    a row in ``predictions.csv``, with what is wrong if it cannot be read. The folder
    must hold at least one image.
    """
    if path.exists() and not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise DataError(f"--data.predict_path {path} is not readable by this user (permission denied); give it read access")
    if path.is_file():
        try:
            load_image(path, mode)  # one file asked for: an error now if it is not a readable image
        except ImageDecodeError as err:
            raise DataError(
                f"--data.predict_path {path} cannot be read as an image: {err.problem}; pass an image file or a folder of images"
            ) from None
        return [path]
    if not path.is_dir():
        what = "does not exist" if not path.exists() and not path.is_symlink() else "is neither a file nor a folder (a broken link?)"
        raise DataError(f"--data.predict_path {path} {what}; pass an image file or a folder of images")
    files, notes = walk_files(path, lambda n: not n.startswith("."), unique=False)
    warn_skipped(notes)
    if not files:
        raise DataError(f"--data.predict_path {path} holds no files; pass an image file or a folder of images")
    if all(can_open(file) is not None for file in files):
        raise DataError(
            f"--data.predict_path {path} holds {len(files)} file(s) but no image PIL can read "
            f"(e.g. {files[0]}: {can_open(files[0])}); pass an image file or a folder of images"
        )
    return files


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

