"""Augmentation policies, random erasing and FixRes sizes on every DataModule's real file format.

CIFAR's python pickles, ImageNet's extracted layout (with torchvision's ``meta.bin``) and a
plain ImageFolder tree of PNG/JPEG files, all written from scikit-learn's digits; plus the
per-image batch operations used with ``on_device``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import ResNet50_Weights
from torchvision.transforms import v2

from resnet_lightning.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DataConfigError,
    ImageFolderDataModule,
    ImageNetDataModule,
)
from resnet_lightning.data.augment import BatchCompose, BatchPolicy, BatchRandomErasing
from resnet_lightning.data.transforms import POLICIES
from tests.fixtures_data import digits, write_image_folder, write_imagenet_meta

POLICY_CLASSES = {"trivialaugment": v2.TrivialAugmentWide, "randaugment": v2.RandAugment, "autoaugment": v2.AutoAugment}


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageNet as torchvision extracts it: class folders plus ``meta.bin`` (read through ``datasets.ImageNet``)."""
    root = write_image_folder(tmp_path_factory.mktemp("imagenet"), num_classes=4, train_per_class=3, val_per_class=2)
    write_imagenet_meta(root)
    return root


def _first_train_batch(dm) -> torch.Tensor:
    dm.prepare_data()
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert torch.isfinite(images).all() and labels.dtype == torch.int64
    return images


def _uses(transform: v2.Compose, cls: type) -> bool:
    return any(isinstance(t, cls) for t in transform.transforms)


@pytest.mark.parametrize("name", POLICIES[1:])
@pytest.mark.parametrize("module", ["cifar10", "cifar100", "imagenet", "image_folder"])
def test_each_policy_runs_on_each_file_format(module: str, name: str, cifar_root, image_folder_root, imagenet_root) -> None:
    options = dict(auto_augment=name, random_erasing=0.5, batch_size=8, num_workers=0)
    if module.startswith("cifar"):
        cls = CIFAR10DataModule if module == "cifar10" else CIFAR100DataModule
        dm = cls(data_dir=str(cifar_root), val_size=100, **options)
        size = 32
    elif module == "imagenet":  # torchvision's extracted ImageNet, read through datasets.ImageNet
        dm, size = ImageNetDataModule(data_dir=str(imagenet_root), image_size=24, **options), 24
    else:  # any folder of class folders; its normalisation is computed from the images in setup
        dm, size = ImageFolderDataModule(data_dir=str(image_folder_root), image_size=24, **options), 24
    torch.manual_seed(0)
    images = _first_train_batch(dm)
    assert _uses(dm.train_transform, POLICY_CLASSES[name]) and _uses(dm.train_transform, v2.RandomErasing)
    assert not _uses(dm.eval_transform, POLICY_CLASSES[name])  # evaluation is never augmented
    assert images.shape == (8, 3, size, size) and images.dtype == torch.float32
    # Erasing writes 0 (the mean after normalisation) into whole rectangles: some image has a zero block.
    assert (images == 0).all(dim=1).flatten(1).sum(1).max() >= 4


@pytest.mark.parametrize("name", POLICIES[1:])
def test_on_device_cifar_applies_the_policy_per_image(cifar_root, name: str) -> None:
    plain = CIFAR10DataModule(data_dir=str(cifar_root), val_size=100, batch_size=64, on_device=True)
    policy = CIFAR10DataModule(data_dir=str(cifar_root), val_size=100, batch_size=64, on_device=True, auto_augment=name)
    assert isinstance(policy.device_augment, BatchCompose)
    before, after = _first_train_batch(plain), _first_train_batch(policy)  # same order, same crops (same seed)
    changed = (before != after).flatten(1).any(1)
    # Per image: some images changed and, unlike one draw for the whole batch, not in one way.
    assert 0 < changed.sum() and len({round(d, 3) for d in (after - before).flatten(1).abs().mean(1).tolist()}) > 8


@pytest.mark.parametrize("cls", [v2.TrivialAugmentWide, v2.RandAugment, lambda: v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)])
def test_batch_policy_gives_each_image_what_the_per_image_transform_gives_for_its_draw(cls) -> None:
    policy = cls()
    images = torch.as_tensor(digits(32, rgb=True)[0][:48])  # (48, 3, 32, 32) uint8
    batch = BatchPolicy(policy)
    params = batch.draw(48, torch.Generator().manual_seed(0))
    assert len(torch.unique(params, dim=0)) > 16  # draws differ from image to image
    expected = []
    for image, row in zip(images, params.tolist()):
        for step in range(batch.steps):
            op, bin_, negate = row[3 * step : 3 * step + 3]
            if op < 0:
                continue
            magnitudes = policy._AUGMENTATION_SPACE[batch.ops[op]][0](batch.num_bins, 32, 32)
            magnitude = 0.0 if magnitudes is None else float(magnitudes[bin_]) * (-1 if negate else 1)
            image = policy._apply_image_or_video_transform(image, batch.ops[op], magnitude, policy.interpolation, policy._fill)
        expected.append(image)
    assert torch.equal(batch(images, params), torch.stack(expected))


def test_batch_random_erasing_draws_one_rectangle_per_image() -> None:
    erasing = BatchRandomErasing(0.5, (32, 32), fill=(10, 20, 30))
    params = erasing.draw(4000, torch.Generator().manual_seed(0))
    erased = params[:, 2] > 0
    assert 0.45 < erased.float().mean() < 0.55
    area = (params[:, 2] * params[:, 3])[erased].float() / 1024
    assert area.min() >= 0.015 and area.max() <= 0.36  # torchvision's scale (0.02, 0.33); sides are rounded
    images = torch.full((6, 3, 32, 32), 255, dtype=torch.uint8)
    out = erasing(images, params[:6])
    for image, (top, left, h, w) in zip(out, params[:6].tolist()):
        assert (image[:, top : top + h, left : left + w] == torch.tensor([10, 20, 30]).view(3, 1, 1)).all()
        assert (image == 255).all(dim=0).sum() == 1024 - h * w


def test_fixres_eval_transform_equals_the_v2_weights_transforms(tmp_path: Path) -> None:
    # A real JPEG and PNG, RGB and not square, so "resize the shorter side" is tested too.
    for split in ("train", "val"):
        for label in range(2):
            (tmp_path / split / f"n{label}").mkdir(parents=True)
    images = digits(64, rgb=True)[0]
    paths = []
    for i, (split, label, suffix, size) in enumerate(
        [("train", 0, "JPEG", (300, 260)), ("train", 1, "png", (260, 300)), ("val", 0, "JPEG", (333, 250)), ("val", 1, "png", (250, 333))]
    ):
        path = tmp_path / split / f"n{label}" / f"{i}.{suffix}"
        Image.fromarray(np.ascontiguousarray(images[i].transpose(1, 2, 0))).resize(size, Image.BICUBIC).save(path)
        paths.append(path)
    dm = ImageNetDataModule(data_dir=str(tmp_path), train_crop_size=176, eval_resize_size=232, eval_crop_size=224, num_workers=0)
    dm.setup("fit")
    reference = ResNet50_Weights.IMAGENET1K_V2.transforms()  # ImageClassification(crop 224, resize 232), no download
    for index, path in enumerate(paths[2:]):
        ours, theirs = dm.val_set[index][0], reference(Image.open(path).convert("RGB"))
        assert ours.shape == theirs.shape == (3, 224, 224)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)  # float rounding of the normalisation only
    assert dm.train_set[0][0].shape == (3, 176, 176)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auto_augment": "trivialaugmnet"}, "unknown auto_augment policy 'trivialaugmnet'; did you mean 'trivialaugment'?"),
        ({"random_erasing": 1.5}, "random_erasing=1.5 is a probability and must be in [0, 1]"),
    ],
)
def test_bad_policy_options_name_the_value_and_the_fix(cifar_root, image_folder_root, options, message) -> None:
    for make in (
        lambda: CIFAR10DataModule(data_dir=str(cifar_root), **options),
        lambda: ImageNetDataModule(data_dir=str(image_folder_root), **options),
        lambda: ImageFolderDataModule(data_dir=str(image_folder_root), **options),
    ):
        with pytest.raises(DataConfigError) as error:
            make()
        assert message in str(error.value) and "--data." in str(error.value) and "\n" not in str(error.value)


def test_eval_crop_larger_than_resize_names_both(image_folder_root) -> None:
    with pytest.raises(DataConfigError, match=r"eval_crop_size=240 is larger than eval_resize_size=232.*--data.eval_resize_size"):
        ImageNetDataModule(data_dir=str(image_folder_root), eval_resize_size=232, eval_crop_size=240)
