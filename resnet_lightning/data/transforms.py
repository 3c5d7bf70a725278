"""Training and evaluation transforms shared by the DataModules: policies, random erasing, FixRes sizes.

One place builds what torchvision's classification reference builds
(``references/classification/presets.py``), so CIFAR, ImageNet and image folders
get the same switches with the same meaning:

* ``auto_augment``: ``trivialaugment`` (TrivialAugmentWide; Müller & Hutter 2021),
  ``randaugment`` (Cubuk et al. 2020), ``autoaugment`` (the ImageNet policy of Cubuk
  et al. 2019) or ``none``; applied after the crop and flip, on uint8 pixels.
* ``random_erasing``: the probability of erasing a random rectangle (Zhong et al.
  2020), applied last, after normalisation, with 0 (the mean colour).
* FixRes (Touvron et al. 2019): the train crop, the evaluation resize and the
  evaluation crop are separate sizes. Training on smaller random-resized crops than
  the evaluation crop compensates the apparent object size the random crop adds;
  torchvision's ResNet-50 V2 trains at 176 and evaluates at 232 -> 224.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from resnet_lightning.data.augment import BatchPolicy, BatchRandomErasing
from resnet_lightning.data.errors import DataConfigError
from resnet_lightning.errors import did_you_mean, one_line

POLICIES = ("none", "trivialaugment", "randaugment", "autoaugment")


def check_policy_options(auto_augment: str, random_erasing: float) -> None:
    """Raise a one-line ``DataConfigError`` for an unknown policy name or an erasing probability outside [0, 1]."""
    if auto_augment not in POLICIES:
        hint = did_you_mean(f"'{auto_augment}'", [f"'{name}'" for name in POLICIES])  # names quoted, as in the message
        raise DataConfigError(
            one_line(f"unknown auto_augment policy '{auto_augment}'", hint, f"choose one of {', '.join(POLICIES)} "
                     "(e.g. --data.auto_augment trivialaugment)")
        )
    if not 0.0 <= random_erasing <= 1.0:
        raise DataConfigError(
            f"random_erasing={random_erasing} is a probability and must be in [0, 1] (0 is off; torchvision's "
            "recipe uses 0.1); e.g. --data.random_erasing 0.1"
        )


def policy(name: str, interpolation: v2.InterpolationMode = v2.InterpolationMode.NEAREST) -> v2.Transform | None:
    """The torchvision policy called ``name`` (see ``POLICIES``), or None for ``"none"``.

    Args:
        name: One of ``POLICIES``.
        interpolation: For the geometric operations (torchvision's recipe: bilinear on ImageNet).
    """
    check_policy_options(name, 0.0)
    if name == "trivialaugment":
        return v2.TrivialAugmentWide(interpolation=interpolation)
    if name == "randaugment":
        return v2.RandAugment(interpolation=interpolation)
    if name == "autoaugment":
        return v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET, interpolation=interpolation)
    return None


def normalize(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    """uint8 image (PIL or tensor) to normalised float32."""
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def train_transform(
    crop: Sequence[v2.Transform], mean: Sequence[float], std: Sequence[float], auto_augment: str = "none",
    random_erasing: float = 0.0, interpolation: v2.InterpolationMode = v2.InterpolationMode.NEAREST,
) -> v2.Compose:
    """``crop`` (the geometric augmentation) -> policy -> normalise -> random erasing, per image.

    The order of torchvision's ``ClassificationPresetTrain``.
    """
    check_policy_options(auto_augment, random_erasing)
    chosen = policy(auto_augment, interpolation)
    steps = [*crop, *([chosen] if chosen is not None else []), *normalize(mean, std)]
    if random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value=0))
    return v2.Compose([*steps, v2.ToPureTensor()])


def batch_augments(
    auto_augment: str, random_erasing: float, size: tuple[int, int], mean: Sequence[float]
) -> list[BatchPolicy | BatchRandomErasing]:
    """The policy and erasing as per-image batch operations on uint8 pixels, for ``on_device`` data.

    Erasing runs before normalisation there, so its fill is the mean colour in uint8.
    """
    check_policy_options(auto_augment, random_erasing)
    chosen = policy(auto_augment)
    augments: list[BatchPolicy | BatchRandomErasing] = [BatchPolicy(chosen)] if chosen is not None else []
    if random_erasing > 0:
        augments.append(BatchRandomErasing(random_erasing, size, fill=[round(255 * m) for m in mean]))
    return augments


def check_fixres_sizes(train_crop_size: int, eval_resize_size: int, eval_crop_size: int) -> None:
    """Raise a one-line ``DataConfigError`` unless all sizes are positive and the eval crop fits the resize."""
    sizes = {"train_crop_size": train_crop_size, "eval_resize_size": eval_resize_size, "eval_crop_size": eval_crop_size}
    for name, value in sizes.items():
        if value < 1:
            raise DataConfigError(f"{name}={value} must be a positive number of pixels, e.g. --data.{name} 224")
    if eval_crop_size > eval_resize_size:
        raise DataConfigError(
            f"eval_crop_size={eval_crop_size} is larger than eval_resize_size={eval_resize_size}: the centre crop "
            "must fit in the resized image; set --data.eval_resize_size to at least the crop (torchvision V2: "
            "232 for 224, the classic 256 for 224)"
        )


def imagenet_train_transform(
    train_crop_size: int, mean: Sequence[float], std: Sequence[float], auto_augment: str = "none",
    random_erasing: float = 0.0,
) -> v2.Compose:
    """RandomResizedCrop (Szegedy et al. 2015) + flip + policy + normalise + erasing, as torchvision's recipe."""
    bilinear = v2.InterpolationMode.BILINEAR
    crop = [v2.RandomResizedCrop(train_crop_size, interpolation=bilinear, antialias=True), v2.RandomHorizontalFlip()]
    return train_transform(crop, mean, std, auto_augment, random_erasing, interpolation=bilinear)


def imagenet_eval_transform(
    eval_resize_size: int, eval_crop_size: int, mean: Sequence[float], std: Sequence[float]
) -> v2.Compose:
    """Shorter side to ``eval_resize_size`` (bilinear, antialiased), centre ``eval_crop_size``, normalise.

    The same as torchvision's ``ImageClassification(crop_size, resize_size)``, the
    ``transforms()`` of its pretrained weights.
    """
    return v2.Compose(
        [
            v2.Resize(eval_resize_size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.CenterCrop(eval_crop_size),
            *normalize(mean, std),
            v2.ToPureTensor(),
        ]
    )
