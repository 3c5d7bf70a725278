"""Small, real dataset files made from scikit-learn's digits, for tests that must not download.

Each writer produces the exact on-disk format the real dataset uses (MNIST's IDX
files, CIFAR's python pickles, an ImageFolder tree of PNG/JPEG files), filled with
the 1,797 digits upsampled to the dataset's image size, so the DataModules read
them through the same code as the real thing. Plain functions, importable from any
test (``from tests.fixtures_data import write_cifar10`` or, with ``tests/`` on the
path, ``from fixtures_data import ...``); the pytest fixtures wrapping them live in
``tests/data/conftest.py``.

The first ``TRAIN_SIZE`` digits form the training files, the rest the test files.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits

TRAIN_SIZE = 1500  # of the 1,797 digits; the other 297 are the test files
TEST_SIZE = 1797 - TRAIN_SIZE


def digits(size: int, rgb: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 images, upsampled from 8x8, and their labels.

    Args:
        size: Side of the square output images.
        rgb: Return ``(N, 3, size, size)`` with three different channels (the digit,
            its negative, half the digit), so that a reader that mixes up the
            channel order or the row layout gives visibly wrong images; otherwise
            ``(N, size, size)``.

    Returns:
        ``(images uint8, labels int64 0..9)``.
    """
    images, labels = load_digits(return_X_y=True)
    small = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) * (255 / 16)  # 0..16 -> 0..255
    big = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    grey = big.round().clamp(0, 255).to(torch.uint8).squeeze(1).numpy()  # (N, size, size)
    if rgb:
        grey = np.stack([grey, 255 - grey, grey // 2], axis=1)  # (N, 3, size, size)
    return grey, labels.astype(np.int64)


def write_mnist_idx(root: str | Path) -> Path:
    """Write ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` as real IDX files.

    IDX: a big-endian header (magic 2051 for images, 2049 for labels, then each
    dimension as a 32-bit integer) followed by the uint8 data.

    Returns:
        The ``raw`` folder.
    """
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    images, labels = digits(28)
    for split, part in (("train", slice(0, TRAIN_SIZE)), ("t10k", slice(TRAIN_SIZE, None))):
        split_images, split_labels = images[part], labels[part].astype(np.uint8)
        header = np.array([2051, *split_images.shape], dtype=">i4").tobytes()
        (raw / f"{split}-images-idx3-ubyte").write_bytes(header + split_images.tobytes())
        header = np.array([2049, len(split_labels)], dtype=">i4").tobytes()
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(header + split_labels.tobytes())
    return raw


def _pickle(path: Path, entry: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)  # the protocol of the official (Python 2) files


def write_cifar10(root: str | Path) -> Path:
    """Write ``root/cifar-10-batches-py/`` with CIFAR-10's files and pickle format.

    ``data_batch_1`` .. ``data_batch_5`` split the training digits five ways,
    ``test_batch`` holds the rest; each is a dict with ``data`` (uint8, ``(N, 3072)``,
    each row 1024 red then 1024 green then 1024 blue values), ``labels``,
    ``filenames`` and ``batch_label``; ``batches.meta`` lists the ``label_names``.

    Returns:
        The ``cifar-10-batches-py`` folder.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = digits(32, rgb=True)
    rows = images.reshape(len(images), 3072)  # channel-major, as in the real files
    batches = np.array_split(np.arange(TRAIN_SIZE), 5)
    named = [(f"data_batch_{i + 1}", idx) for i, idx in enumerate(batches)] + [
        ("test_batch", np.arange(TRAIN_SIZE, len(images)))
    ]
    for name, idx in named:
        _pickle(
            folder / name,
            {
                "batch_label": f"{name} of 6",
                "labels": labels[idx].tolist(),
                "data": rows[idx],
                "filenames": [f"digit_{i:04d}.png" for i in idx],
            },
        )
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    _pickle(folder / "batches.meta", {"num_cases_per_batch": len(batches[0]), "label_names": names, "num_vis": 3072})
    return folder


def cifar100_fine_labels(labels: np.ndarray) -> np.ndarray:
    """The 100 fine labels ``write_cifar100`` gives the digits: ``10 * digit + index % 10``."""
    return labels * 10 + np.arange(len(labels)) % 10


def write_cifar100(root: str | Path) -> Path:
    """Write ``root/cifar-100-python/`` (``train``, ``test``, ``meta``) in CIFAR-100's pickle format.

    Each digit gets one of 100 fine labels (:func:`cifar100_fine_labels`, so all of
    0..99 occur) and a coarse label ``fine // 5`` (20 superclasses, as in CIFAR-100).

    Returns:
        The ``cifar-100-python`` folder.
    """
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = digits(32, rgb=True)
    rows, fine = images.reshape(len(images), 3072), cifar100_fine_labels(labels)
    for name, idx in (("train", np.arange(TRAIN_SIZE)), ("test", np.arange(TRAIN_SIZE, len(images)))):
        _pickle(
            folder / name,
            {
                "filenames": [f"digit_{i:04d}.png" for i in idx],
                "batch_label": f"{name} batch 1 of 1",
                "fine_labels": fine[idx].tolist(),
                "coarse_labels": (fine[idx] // 5).tolist(),
                "data": rows[idx],
            },
        )
    _pickle(
        folder / "meta",
        {"fine_label_names": [f"class_{i:02d}" for i in range(100)], "coarse_label_names": [f"super_{i:02d}" for i in range(20)]},
    )
    return folder


def write_image_folder(
    root: str | Path,
    num_classes: int = 10,
    train_per_class: int = 6,
    val_per_class: int = 3,
    size: int = 40,
) -> Path:
    """Write ``root/train/<class>/*`` and ``root/val/<class>/*``: real PNG and JPEG files of digits.

    Class folders are named like ImageNet's WordNet ids (``n00000000`` .. for digit
    0 ..), holding RGB images of that digit, upsampled to ``size`` x ``size``;
    alternate files are PNG and JPEG, and every third one is greyscale (ImageNet has
    greyscale JPEGs too), so readers must handle both formats and modes.

    Args:
        root: Directory to write into.
        num_classes: Digits 0..num_classes-1 get a folder each (at most 10).
        train_per_class: Images per class under ``train/``.
        val_per_class: Images per class under ``val/``.
        size: Side of the images in pixels.

    Returns:
        ``root``.
    """
    root = Path(root)
    images, labels = digits(size, rgb=True)
    for split, start, count in (("train", 0, train_per_class), ("val", train_per_class, val_per_class)):
        for digit in range(num_classes):
            folder = root / split / f"n{digit:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k, i in enumerate(np.flatnonzero(labels == digit)[start : start + count]):
                image = Image.fromarray(images[i].transpose(1, 2, 0))  # (3, H, W) -> (H, W, 3)
                if k % 3 == 2:
                    image = image.convert("L")
                image.save(folder / f"{split}_{i:04d}.{'png' if k % 2 == 0 else 'JPEG'}")
    return root


def write_imagenet_meta(root: str | Path) -> Path:
    """Write ``root/meta.bin`` as ``torchvision.datasets.ImageNet`` does after parsing the devkit.

    It holds ``(wnid_to_classes, val_wnids)``: a readable name tuple for each class
    folder under ``root/train``, and the wnid of each val image in file-name order.

    Returns:
        The ``meta.bin`` path.
    """
    root = Path(root)
    wnids = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    wnid_to_classes = {wnid: (f"digit {int(wnid[1:])}", f"numeral {int(wnid[1:])}") for wnid in wnids}
    val_images = sorted((root / "val").glob("*/*"), key=lambda p: p.name)
    torch.save((wnid_to_classes, [p.parent.name for p in val_images]), root / "meta.bin")
    return root / "meta.bin"


# The files write_mixed_images makes whose pixels, read as training reads them, are the source's exactly.
SAME_AS_SOURCE = ("source.png", "rgb.bmp", "rgba.png", "la.png", "palette.gif", "cmyk.tiff", "sixteen_bit.png",
                  "exif_rotated.png", "transparent.png")
UNREADABLE = ("truncated.png", "notes.txt")


def write_mixed_images(folder: str | Path, source: str | Path) -> Path:
    """Write ``folder/`` with the grey image ``source`` in many formats and modes, a corrupt file and a text file.

    The files named in ``SAME_AS_SOURCE`` hold the same picture exactly: RGB (BMP),
    opaque RGBA and LA, a palette GIF, CMYK (TIFF), 16-bit (each value times 257), the
    picture stored turned by 90 degrees with EXIF orientation 6 (display turned back),
    and RGBA whose black pixels are transparent white. Besides: a larger non-square
    JPEG, a 1-bit PNG (both changed pictures), ``truncated.png`` (a PNG cut after 60
    bytes) and ``notes.txt``.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    grey = Image.open(source).convert("L")
    pixels = np.asarray(grey)
    grey.save(folder / "source.png")
    grey.convert("RGB").save(folder / "rgb.bmp")
    grey.convert("RGBA").save(folder / "rgba.png")
    grey.convert("LA").save(folder / "la.png")
    grey.save(folder / "palette.gif")  # GIF: a palette image with the 256 greys
    grey.convert("RGB").convert("CMYK").save(folder / "cmyk.tiff")
    Image.fromarray(pixels.astype(np.uint16) * 257).save(folder / "sixteen_bit.png")  # mode I;16
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: "rotate 90 degrees clockwise to display"
    grey.transpose(Image.Transpose.ROTATE_90).save(folder / "exif_rotated.png", exif=exif)
    rgba = np.stack([pixels] * 3 + [np.full_like(pixels, 255)], axis=-1)
    rgba[pixels == 0] = (255, 255, 255, 0)  # transparent, white underneath: read as black
    Image.fromarray(rgba, "RGBA").save(folder / "transparent.png")
    grey.resize((grey.width * 3, grey.height * 2)).convert("RGB").save(folder / "large.jpg", quality=90)
    grey.convert("1").save(folder / "one_bit.png")
    (folder / "truncated.png").write_bytes((folder / "source.png").read_bytes()[:60])
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def assert_continues_after_three_batches(restored: Any, state: dict[str, int], whole: list[Any]) -> None:
    """A training loader given ``state`` (saved after 3 batches of epoch ``state["epoch"]``) hands out exactly
    the rest of that epoch, ``whole[3:]``, to the bit; the epoch after it is whole again."""
    restored.load_state_dict(state)
    iterator = iter(restored)  # made before set_epoch, as Lightning does when it resumes
    restored.sampler.set_epoch(state["epoch"])
    rest = list(iterator)
    assert len(rest) == len(whole) - 3
    for (images, labels), (expected_images, expected_labels) in zip(rest, whole[3:], strict=True):
        assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
    assert len(list(restored)) == len(whole)  # only the first epoch after loading is cut short
