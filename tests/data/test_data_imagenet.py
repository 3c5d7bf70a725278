"""ImageNetDataModule over real PNG/JPEG class folders (ImageFolder layout), and its errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torchvision import datasets

from resnet_lightning.data import DataConfigError, DataError, ImageNetDataModule
from tests.fixtures_data import write_image_folder, write_imagenet_meta


def _setup(root: Path, **kwargs) -> ImageNetDataModule:
    dm = ImageNetDataModule(data_dir=str(root), **dict(dict(image_size=32, batch_size=16, num_workers=0), **kwargs))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_reads_class_folders_of_png_and_jpeg(image_folder_root: Path) -> None:
    dm = _setup(image_folder_root)
    assert (dm.num_classes, dm.in_channels) == (10, 3)  # counted from train/ in __init__, before setup
    assert (len(dm.train_set), len(dm.val_set)) == (60, 30) and dm.test_set is dm.val_set
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        images, labels = next(iter(loader))  # greyscale files come out as 3 channels too
        assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and labels.max() <= 9
    # Labels are the sorted class folders' indices; file n00000007/... has label 7.
    assert dm.class_names == [f"n{digit:08d}" for digit in range(10)]
    path, label = dm.val_set.samples[-1]
    assert Path(path).parent.name == "n00000009" and label == 9


def test_eval_resizes_then_centre_crops_and_train_crops_at_random(image_folder_root: Path) -> None:
    dm = _setup(image_folder_root, image_size=24)
    # Eval: shorter side to round(24 * 256 / 224) = 27, centre 24x24: the same every time.
    first, second = dm.val_set[0][0], dm.val_set[0][0]
    assert first.shape == (3, 24, 24) and torch.equal(first, second)
    torch.manual_seed(0)
    draws = torch.stack([dm.train_set[0][0] for _ in range(10)])
    assert draws.shape == (10, 3, 24, 24) and len({tuple(d.flatten().tolist()) for d in draws}) > 1


def test_num_classes_follows_the_folders(tmp_path: Path) -> None:
    write_image_folder(tmp_path, num_classes=3)
    assert ImageNetDataModule(data_dir=str(tmp_path)).num_classes == 3
    assert ImageNetDataModule(data_dir=str(tmp_path / "not_there_yet")).num_classes == 1000
    assert ImageNetDataModule(data_dir=str(tmp_path / "not_there_yet"), num_classes=100).num_classes == 100
    with pytest.raises(DataConfigError, match="num_classes=5 but") as error:
        ImageNetDataModule(data_dir=str(tmp_path), num_classes=5)
    assert str(tmp_path / "train") in str(error.value)


def test_val_missing_a_class_keeps_the_training_labels(tmp_path: Path) -> None:
    # A plain ImageFolder over val/ would renumber classes 4..9 as 3..8.
    write_image_folder(tmp_path)
    shutil.rmtree(tmp_path / "val" / "n00000003")
    dm = _setup(tmp_path)
    labels = {Path(path).parent.name: label for path, label in dm.val_set.samples}
    assert labels["n00000004"] == 4 and labels["n00000009"] == 9 and "n00000003" not in labels


def test_val_class_unknown_to_train_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path)
    shutil.copytree(tmp_path / "val" / "n00000001", tmp_path / "val" / "n99999999")
    with pytest.raises(DataError, match="n99999999") as error:
        _setup(tmp_path)
    assert str(tmp_path / "val") in str(error.value)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path)
    empty = tmp_path / "train" / "n00000005"
    for image in empty.iterdir():
        image.unlink()
    with pytest.raises(DataError, match="hold no image") as error:
        _setup(tmp_path)
    assert str(empty) in str(error.value)


def test_missing_data_dir_tells_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        _setup(tmp_path / "imagenet")
    message = str(error.value)
    assert str(tmp_path / "imagenet") in message and "--data.data_dir" in message
    assert "train/<class>" in message and "ILSVRC2012_img_train.tar" in message


def test_with_meta_bin_it_reads_through_torchvision_imagenet(tmp_path: Path) -> None:
    # meta.bin is what torchvision's ImageNet writes when it parses the devkit.
    write_image_folder(tmp_path, num_classes=4)
    write_imagenet_meta(tmp_path)
    dm = _setup(tmp_path)
    assert isinstance(dm.train_set, datasets.ImageNet) and dm.num_classes == 4
    assert dm.val_set.classes[2] == ("digit 2", "numeral 2") and dm.class_names[2] == "digit 2"
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (16, 3, 32, 32) and set(labels.tolist()) <= {0, 1, 2, 3}


def test_incomplete_archives_are_listed(tmp_path: Path) -> None:
    (tmp_path / "ILSVRC2012_devkit_t12.tar.gz").touch()
    with pytest.raises(DataError) as error:
        ImageNetDataModule(data_dir=str(tmp_path)).prepare_data()
    message = str(error.value)
    assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
    assert str(tmp_path) in message


def test_corrupt_archives_fail_cleanly_and_leave_nothing(tmp_path: Path) -> None:
    # Three files with the official names but not the official content: torchvision's
    # md5 check refuses them, and the staged extraction leaves nothing behind.
    names = ["ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"]
    for name in names:
        (tmp_path / name).write_bytes(b"not an archive")
    with pytest.raises(DataError, match="corrupted") as error:
        ImageNetDataModule(data_dir=str(tmp_path)).prepare_data()
    assert str(tmp_path) in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_undecodable_image_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path)
    broken = next((tmp_path / "val" / "n00000002").glob("*.JPEG"))
    broken.write_bytes(broken.read_bytes()[:40])
    dm = _setup(tmp_path)
    index = next(i for i, (path, _) in enumerate(dm.val_set.samples) if Path(path) == broken)
    with pytest.raises(DataError) as error:
        dm.val_set[index]
    assert str(broken) in str(error.value)
