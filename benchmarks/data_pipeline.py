"""Benchmark 3, data pipeline: images/s of each DataModule's training loader, by worker count.

Real files in the real formats, written from scikit-learn's digits by the test
suite's writers (``tests/fixtures_data.py``) into a scratch directory: MNIST's IDX
files, CIFAR-10's python pickles, and an ImageFolder tree of JPEGs read at 224x224 with the ImageNet
DataModule's RandomResizedCrop. Each batch goes through the DataModule's
``on_before_batch_transfer``, ``transfer_batch_to_device`` and
``on_after_batch_transfer``, as in a fit. The first epoch includes starting the
workers; later epochs reuse them (``persistent_workers``, the DataModules' default).
Compare the steady rate with the model's img/s (benchmark 1, 2, 5) to see which
one bounds a run.
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.common import markdown_table, median, now


def write_jpeg_folder(root: Path, size: int, per_class: int) -> dict[str, float]:
    """``root/{train,val}/n0000000d/*.JPEG``: RGB JPEGs of the digits upsampled to ``size``.

    The pixels come from ``tests.fixtures_data.digits`` (the test suite's ImageFolder
    writer mixes in PNG and greyscale files; here every file is an RGB JPEG, as in ImageNet).
    """
    from tests.fixtures_data import digits

    images, labels = digits(size, rgb=True)
    sizes = []
    for split, start, count in (("train", 0, per_class), ("val", per_class, 1)):
        for digit in range(10):
            folder = root / split / f"n{digit:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(labels == digit)[start : start + count]:
                path = folder / f"{split}_{i:04d}.JPEG"
                Image.fromarray(images[i].transpose(1, 2, 0)).save(path, quality=90)  # (3, H, W) -> (H, W, 3)
                sizes.append(path.stat().st_size)
    return {"files": len(sizes), "mean_kib": float(np.mean(sizes)) / 1024}


def time_epochs(datamodule, epochs: int, device: str = "cpu") -> list[tuple[float, int]]:
    """(seconds, images) of each of ``epochs`` passes over the training loader."""
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    target = torch.device(device)
    results = []
    for epoch in range(epochs):
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)  # as Lightning does each epoch
        start, count = now(device), 0
        for batch in loader:
            batch = datamodule.on_before_batch_transfer(batch, 0)
            batch = datamodule.transfer_batch_to_device(batch, target, 0)
            batch = datamodule.on_after_batch_transfer(batch, 0)
            count += len(batch[1])
        results.append((now(device) - start, count))
    del loader  # shuts persistent workers down
    return results


def has_on_device(cls: type) -> bool:
    """Whether the DataModule takes ``on_device`` (added alongside this benchmark)."""
    return "on_device" in inspect.signature(cls.__init__).parameters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="passes per row (default 4; quick 2)")
    parser.add_argument("--jpeg-size", type=int, default=256, help="side of the JPEGs written (read at 224)")
    parser.add_argument("--jpeg-per-class", type=int, default=None, help="JPEGs per class (default 40; quick 6)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.fixtures_data import write_cifar10, write_mnist_idx

    from resnet_lightning.data import CIFAR10DataModule, DigitsDataModule, ImageNetDataModule, MNISTDataModule

    epochs = args.epochs or (2 if args.quick else 4)
    per_class = args.jpeg_per_class or (6 if args.quick else 40)
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as scratch:
        root = Path(scratch)
        write_mnist_idx(root / "mnist")
        write_cifar10(root / "cifar")
        jpegs = write_jpeg_folder(root / "imagefolder", args.jpeg_size, per_class)
        notes.append(f"ImageFolder: {jpegs['files']} JPEGs of {args.jpeg_size}x{args.jpeg_size}, mean {jpegs['mean_kib']:.1f} KiB")
        makers = {
            "digits (8x8)": lambda **kw: DigitsDataModule(**kw),
            "MNIST format (28x28)": lambda **kw: MNISTDataModule(data_dir=str(root / "mnist"), val_size=100, **kw),
            "CIFAR-10 format (32x32, crop+flip)": lambda **kw: CIFAR10DataModule(data_dir=str(root / "cifar"), val_size=100, **kw),
            "ImageFolder JPEG (224, RandomResizedCrop)": lambda **kw: ImageNetDataModule(
                data_dir=str(root / "imagefolder"), image_size=224, **kw
            ),
        }
        configs = [(name, {"num_workers": w}) for name in makers for w in args.workers]
        device_resident = (
            ("digits (8x8)", DigitsDataModule),
            ("MNIST format (28x28)", MNISTDataModule),
            ("CIFAR-10 format (32x32, crop+flip)", CIFAR10DataModule),
        )
        for name, cls in device_resident:
            if has_on_device(cls):
                configs.append((name, {"on_device": True}))
            else:
                notes.append(f"{cls.__name__} has no on_device option yet: its on_device row was skipped")
        for name, kwargs in configs:
            datamodule = makers[name](**kwargs)
            epochs_run = time_epochs(datamodule, epochs)
            first_seconds, images = epochs_run[0]
            steady = median([seconds for seconds, _ in epochs_run[1:]])
            rows.append({
                "data": name,
                "loader": "on_device=True" if kwargs.get("on_device") else f"num_workers={kwargs['num_workers']}",
                "images": images,
                "batch": datamodule.batch_size,
                "first_img_s": images / first_seconds,
                "img_s": images / steady,
            })
    return {
        "benchmark": "data",
        "config": {"workers": args.workers, "epochs": epochs, "jpeg_size": args.jpeg_size, "jpeg_per_class": per_class},
        "rows": rows,
        "notes": notes,
    }


def table(result: dict[str, Any]) -> str:
    body = markdown_table(result["rows"], {
        "data": "DataModule (train loader)", "loader": "loader", "images": "images/epoch", "batch": "batch",
        "first_img_s": "img/s, first epoch", "img_s": "img/s, later epochs (median)",
    })
    return body + "".join(f"\n\n{note}." for note in result["notes"])
