"""``python -m resnet_lightning.data.digit_images DIR``: a small folder of real images to fine-tune on.

scikit-learn's handwritten digits (shipped with scikit-learn, so offline) written as PNG
files in the layout :class:`~resnet_lightning.data.ImageFolderDataModule` reads.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from PIL import Image

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def make_digits(
    folder: str | os.PathLike[str], classes: int = 3, size: int = 32, unlabelled: int = 12, per_class: int | None = None
) -> Path:
    """Write scikit-learn's handwritten digits as PNG files: a small tree to fine-tune on.

    ``folder/labelled/<zero|one|...>/NNNN.png`` holds the digits 0 .. ``classes - 1``
    (about 180 per class) but their last ``unlabelled`` images, which go to
    ``folder/unlabelled/NNNN.png`` for predicting. Images are ``size`` x ``size`` grey,
    upsampled from 8x8. ``per_class`` keeps only that many labelled images of each class.

    Returns:
        ``folder``.
    """
    from sklearn.datasets import load_digits

    if not 2 <= classes <= 10:
        raise ValueError(f"classes={classes}: the digits have 2 to 10 classes")
    images, labels = load_digits(return_X_y=True)
    small = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) * (255 / 16)  # 0..16 -> 0..255
    big = torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    pixels = big.round().clamp(0, 255).to(torch.uint8).squeeze(1).numpy()  # (N, size, size)
    root = Path(folder)
    chosen = [i for i, label in enumerate(labels) if label < classes]
    written = [0] * classes
    for n, i in enumerate(chosen):
        if n >= len(chosen) - unlabelled:
            target = root / "unlabelled" / f"{i:04d}.png"
        elif per_class is None or written[labels[i]] < per_class:
            written[labels[i]] += 1
            target = root / "labelled" / DIGIT_NAMES[labels[i]] / f"{i:04d}.png"
        else:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i], mode="L").save(target)
    return root


def main(argv: list[str] | None = None) -> None:
    """``python -m resnet_lightning.data.digit_images DIR [--classes 3] [--size 32]``."""
    parser = argparse.ArgumentParser(prog="python -m resnet_lightning.data.digit_images", description=make_digits.__doc__.split("\n")[0])
    parser.add_argument("folder", metavar="DIR", help="folder to write the digit images into")
    parser.add_argument("--classes", type=int, default=3, help="digits 0..classes-1 (default 3)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    args = parser.parse_args(argv)
    root = make_digits(args.folder, args.classes, args.size)
    labelled = sum(1 for _ in (root / "labelled").rglob("*.png"))
    print(f"wrote {labelled} labelled images in {root / 'labelled'}/<class>/ and "
          f"{sum(1 for _ in (root / 'unlabelled').glob('*.png'))} unlabelled ones in {root / 'unlabelled'}/")


if __name__ == "__main__":
    main()
