"""ImageNet (ILSVRC-2012) or any image-classification tree in the ImageFolder layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets import imagenet as tv_imagenet
from torchvision.datasets.folder import IMG_EXTENSIONS
from typing_extensions import override

from resnet_lightning.data.checks import check_readable
from resnet_lightning.data.errors import DataConfigError, DataError
from resnet_lightning.data.image_files import ImageFilesDataModule
from resnet_lightning.data.images import (
    class_files,
    folder_names,
    is_image,
    load_image,
    walk_files,
    warn_skipped,
)
from resnet_lightning.data.staging import stage_into_place

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# torchvision's names for the official archives, which it checks by md5 before extracting.
ARCHIVES = {split: name for split, (name, _md5) in tv_imagenet.ARCHIVE_META.items()}


class ImageNetDataModule(ImageFilesDataModule):
    """ImageNet as ``(N, 3, image_size, image_size)`` float32, normalised.

    Reads ``data_dir/train/<class>/*`` and ``data_dir/val/<class>/*`` (any
    ImageFolder tree: ImageNet, a subset of it, or another dataset; classes are the
    sorted folder names). If instead ``data_dir`` holds the official archives
    (``ILSVRC2012_img_train.tar``, ``ILSVRC2012_img_val.tar``,
    ``ILSVRC2012_devkit_t12.tar.gz``), ``prepare_data`` extracts them once, through
    ``torchvision.datasets.ImageNet``'s md5-checked parsers, into that same layout
    plus ``meta.bin``; the data is then read with ``torchvision.datasets.ImageNet``.

    Training uses RandomResizedCrop(train_crop_size) and a horizontal flip (the scale
    augmentation of Szegedy et al. 2015, as in torchvision's ResNet recipe), then the
    ``auto_augment`` policy and ``random_erasing`` if asked; evaluation resizes the
    shorter side to ``eval_resize_size`` and takes the centre ``eval_crop_size`` crop
    (He et al. 2015's single-crop 224 from 256 by default; torchvision V2's FixRes
    setting is 176 / 232 / 224, see ``data/transforms.py``). The validation set is
    ImageNet's val split, which is also the test set (the test labels were never
    released).

    Args:
        data_dir: Directory with ``train/`` and ``val/`` class folders, or the ILSVRC-2012 archives.
        num_classes: Number of classes. ``None``: the number of class folders in
            ``data_dir/train``, or 1000 (ILSVRC-2012) before it exists. If given, it
            must match the class folders.
        batch_size: Samples per batch, per device (He et al. 2015: 256 in all).
        num_workers: Loader worker processes; JPEG decoding needs several per GPU.
        **kwargs: ``ImageFilesDataModule``'s sizes and augmentation (``image_size``,
            ``train_crop_size``, ``eval_resize_size``, ``eval_crop_size``, ``auto_augment``,
            ``random_erasing``) and ``BaseDataModule``'s other loader options (``pin_memory``,
            ``persistent_workers``). Not ``on_device``: the decoded images do not fit.
    """

    def __init__(
        self,
        data_dir: str = "data/imagenet",
        num_classes: int | None = None,
        batch_size: int = 32,
        num_workers: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, on_device=False, **kwargs)
        self.data_dir = Path(data_dir).expanduser()
        check_readable(self.data_dir, self.data_dir / "train")
        self.in_channels = 3
        self.class_names: list[str] | None = None  # set by setup()
        # Known here, before setup, because the CLI builds the model from it.
        found = folder_names(self.data_dir / "train") if (self.data_dir / "train").is_dir() else None
        if found == []:
            raise DataError(
                f"{self.data_dir / 'train'} has no class folders; expected {self.data_dir}/train/<class>/<image> "
                "(one folder per class)"
            )
        if found is not None and num_classes is not None and num_classes != len(found):
            raise DataConfigError(
                f"num_classes={num_classes} but {self.data_dir / 'train'} has {len(found)} class folders; "
                "leave --data.num_classes unset to use the folders, or point --data.data_dir elsewhere"
            )
        self.num_classes = len(found) if found is not None else num_classes or 1000
        self.build_transforms(IMAGENET_MEAN, IMAGENET_STD)

    @override
    def prepare_data(self) -> None:
        archives = {split: self.data_dir / name for split, name in ARCHIVES.items()}
        todo = [split for split in ("train", "val") if not (self.data_dir / split).is_dir()]
        if not todo or not any(path.is_file() for path in archives.values()):
            return  # already extracted, or an ImageFolder tree (setup reports what is missing)
        missing = [archives[split].name for split in ("devkit", *todo) if not archives[split].is_file()]
        if missing:
            raise DataError(
                f"{self.data_dir} holds some ImageNet archives but not {', '.join(missing)}, which extracting "
                f"{' and '.join(todo)}/ needs (download from https://image-net.org/challenges/LSVRC/2012/); "
                f"or put the extracted train/<class>/ and val/<class>/ folders there instead"
            )
        # Each piece appears under its real name only when complete: extracting the
        # 138 GB training archive takes hours and is easily interrupted.
        try:
            if not (self.data_dir / tv_imagenet.META_FILE).is_file():
                stage_into_place(
                    self.data_dir / tv_imagenet.META_FILE,
                    lambda scratch: tv_imagenet.parse_devkit_archive(str(scratch), file=str(archives["devkit"])),
                )
            if "train" in todo:
                stage_into_place(
                    self.data_dir / "train",
                    lambda scratch: tv_imagenet.parse_train_archive(str(scratch), file=str(archives["train"])),
                )
            if "val" in todo:
                wnids = tv_imagenet.load_meta_file(str(self.data_dir))[1]
                stage_into_place(
                    self.data_dir / "val",
                    lambda scratch: tv_imagenet.parse_val_archive(str(scratch), file=str(archives["val"]), wnids=wnids),
                )
        except RuntimeError as err:  # torchvision: "The archive ... is not present ... or is corrupted" (md5)
            raise DataError(f"extracting ImageNet in {self.data_dir} failed: {err}") from None

    def _raise_if_missing(self) -> None:
        missing = [split for split in ("train", "val") if not (self.data_dir / split).is_dir()]
        if missing:
            raise DataError(
                f"ImageNet not found: {self.data_dir} has no {' or '.join(s + '/' for s in missing)} folder. "
                f"Expected {self.data_dir}/train/<class>/*.JPEG and {self.data_dir}/val/<class>/*.JPEG, or the "
                f"archives {', '.join(ARCHIVES.values())} in {self.data_dir} (they are extracted on first use). "
                "Point --data.data_dir at the directory that holds them; ImageNet cannot be downloaded "
                "automatically (its licence requires registering at image-net.org)"
            )

    @override
    def check_available(self) -> None:
        if not any((self.data_dir / name).is_file() for name in ARCHIVES.values()):  # else prepare_data extracts them
            self._raise_if_missing()

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._raise_if_missing()
        self.train_set = self._folder("train")
        self.val_set = self.test_set = self._folder("val")
        # The folder names (wnids), or torchvision ImageNet's first readable name for each.
        self.class_names = [c[0] if isinstance(c, tuple) else c for c in self.train_set.classes]

    def _folder(self, split: str) -> Dataset:
        folder = self.data_dir / split
        transform = self.train_transform if split == "train" else self.eval_transform
        classes = folder_names(self.data_dir / "train")
        try:
            if (self.data_dir / tv_imagenet.META_FILE).is_file():
                # The extracted archives: torchvision's ImageNet adds the human-readable
                # class names; its class indices are the sorted wnids, as ImageFolder's.
                dataset = datasets.ImageNet(str(self.data_dir), split=split, transform=transform, loader=load_image)
            else:
                dataset = _ImageFolder(folder, classes, transform=transform, loader=load_image)
        except FileNotFoundError as err:  # torchvision: "Found no valid file for the classes ..."
            empty = [str(folder / name) for name in folder_names(folder) if not _has_image(folder / name)]
            if not empty:
                raise
            raise DataError(
                f"{len(empty)} class folder(s) under {folder} hold no image ({', '.join(IMG_EXTENSIONS)}): "
                f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}. Every class needs at least one image; "
                "add them or delete the empty folders"
            ) from None
        if len(classes) != self.num_classes:
            # train/ did not exist when __init__ fixed num_classes (it was extracted since).
            raise DataError(
                f"{self.data_dir / 'train'} has {len(classes)} class folders but the model was built for "
                f"num_classes={self.num_classes}; pass --data.num_classes {len(classes)}"
            )
        return dataset


class _ImageFolder(datasets.ImageFolder):
    """An ImageFolder whose classes are given, so that val's labels use train's indices.

    A plain ImageFolder numbers the classes it finds; a val/ tree lacking one class
    would shift every later label by one, silently. A val/ class that train/ does
    not have is an error instead.
    """

    def __init__(self, root: Path, classes: list[str], **kwargs) -> None:
        self._given_classes = classes
        super().__init__(str(root), **kwargs)

    @override
    def find_classes(self, directory: str | os.PathLike[str]) -> tuple[list[str], dict[str, int]]:
        unknown = sorted(set(folder_names(Path(directory))) - set(self._given_classes))
        if unknown:
            raise DataError(
                f"{directory} has class folders that the training set does not: {', '.join(unknown[:5])}"
                f"{' ...' if len(unknown) > 5 else ''}; train/ and val/ must use the same class names"
            )
        return self._given_classes, {name: index for index, name in enumerate(self._given_classes)}

    @staticmethod
    def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        # A class train/ has and this split lacks is fine; torchvision would call it
        # empty. A folder that exists but holds no image is still an error. Each real file
        # is counted once: a symlink loop or a second link is skipped, with one warning.
        found, skipped = class_files(Path(directory), class_to_idx, is_image)
        samples = [(str(path), class_to_idx[name]) for name, files in found.items() for path in files]
        empty = [name for name, files in found.items() if not files]
        warn_skipped(skipped)
        if empty and not allow_empty:
            raise FileNotFoundError(f"Found no valid file for the classes {', '.join(sorted(empty))}")  # as torchvision
        return samples


def _has_image(folder: Path) -> bool:
    return bool(walk_files(folder, is_image)[0])
