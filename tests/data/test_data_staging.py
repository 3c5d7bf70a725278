"""The staged download, the loader settings every DataModule shares, and the package surface."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser

import resnet_lightning.data as data
from resnet_lightning.data import DataConfigError, DataError, MNISTDataModule
from resnet_lightning.data.digit_images import make_digits
from resnet_lightning.data.staging import stage_into_place
from tests.fixtures_data import write_mnist_idx


def test_staging_puts_the_finished_folder_in_place(tmp_path: Path) -> None:
    def build(scratch: Path) -> None:
        (scratch / "archive.tar.gz").write_bytes(b"downloaded")  # discarded with the scratch dir
        (scratch / "dataset").mkdir()
        (scratch / "dataset" / "file").write_text("complete")

    assert stage_into_place(tmp_path / "dataset", build) == tmp_path / "dataset"
    assert (tmp_path / "dataset" / "file").read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]


def test_staging_leaves_nothing_when_the_build_fails_half_way(tmp_path: Path) -> None:
    def build(scratch: Path) -> None:
        (scratch / "dataset").mkdir()
        (scratch / "dataset" / "part_1").write_bytes(b"x" * 1000)
        raise ConnectionResetError("connection lost after part 1")

    with pytest.raises(ConnectionResetError):
        stage_into_place(tmp_path / "dataset", build)
    assert list(tmp_path.iterdir()) == []


def test_staging_refuses_a_build_that_made_something_else(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="'dataset'.*found only \\['other'\\]"):
        stage_into_place(tmp_path / "dataset", lambda scratch: (scratch / "other").mkdir())
    assert list(tmp_path.iterdir()) == []


def test_staging_keeps_a_copy_another_process_finished_first(tmp_path: Path) -> None:
    def build(scratch: Path) -> None:
        (scratch / "dataset").mkdir()
        (scratch / "dataset" / "file").write_text("ours")
        (tmp_path / "dataset").mkdir()  # the other process wins the race
        (tmp_path / "dataset" / "file").write_text("theirs")

    stage_into_place(tmp_path / "dataset", build)
    assert (tmp_path / "dataset" / "file").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]


class _FailingDownloadMNIST(MNISTDataModule):
    """MNIST whose download dies after writing one file, as a dropped connection would."""

    def _download(self, root: Path) -> None:
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True)
        (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03")
        raise OSError("Network is unreachable")


def test_failed_download_reports_and_leaves_no_folder(tmp_path: Path) -> None:
    dm = _FailingDownloadMNIST(data_dir=str(tmp_path), download=True)
    with pytest.raises(DataError, match="Network is unreachable") as error:
        dm.prepare_data()
    assert "nothing was written" in str(error.value) and str(tmp_path / "MNIST") in str(error.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="--data.download true"):  # the next run sees "missing", not "corrupt"
        MNISTDataModule(data_dir=str(tmp_path)).setup()


def test_loader_settings(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=100, num_workers=0, batch_size=10)
    assert dm.pin_memory is torch.cuda.is_available() and dm.persistent_workers is False
    with pytest.raises(DataError, match="setup"):
        dm.train_dataloader()
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert (loader.batch_size, loader.num_workers, loader.pin_memory) == (10, 0, dm.pin_memory)
    assert dm.predict_dataloader().dataset is dm.test_set
    assert MNISTDataModule(num_workers=2).persistent_workers is True
    assert MNISTDataModule(num_workers=2, pin_memory=True, persistent_workers=False).pin_memory is True


def test_worker_processes_give_the_same_batches(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path)
    batches = []
    for workers in (0, 2):
        dm = MNISTDataModule(data_dir=str(tmp_path), val_size=100, num_workers=workers, batch_size=64)
        dm.setup("fit")
        batches.append(list(dm.val_dataloader()))
    for (images_0, labels_0), (images_2, labels_2) in zip(*batches, strict=True):
        assert torch.equal(images_0, images_2) and torch.equal(labels_0, labels_2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(batch_size=0), "batch_size=0"),
        (dict(num_workers=-1), "num_workers=-1"),
        (dict(num_workers=0, persistent_workers=True), "persistent_workers=True"),
        (dict(val_size=-5), "val_size=-5"),
    ],
)
def test_bad_loader_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(DataConfigError, match=message):
        MNISTDataModule(**kwargs)


def test_val_size_larger_than_the_training_file(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path)
    with pytest.raises(DataConfigError, match="val_size=5000"):
        MNISTDataModule(data_dir=str(tmp_path)).setup()  # the default, with only 1,500 images


# The bases (BaseDataModule, ArrayDataModule, ImageFilesDataModule) are for subclassing, not for --data.
CONCRETE_DATAMODULES = [n for n in data.__all__ if n.endswith("DataModule") and not n.startswith(("Base", "Array", "ImageFiles"))]


@pytest.mark.parametrize("name", CONCRETE_DATAMODULES)
def test_every_datamodule_is_configurable_from_the_command_line(name: str, tmp_path: Path) -> None:
    # LightningCLI builds --data.* from the typed signature and the Google docstring.
    parser = ArgumentParser()
    parser.add_class_arguments(getattr(data, name), "data")
    help_text = parser.format_help()
    assert "--data.batch_size" in help_text and "Samples per batch, per device" in help_text
    args = ["--data.batch_size", "7"]
    if name == "ImageFolderDataModule":  # it counts its classes from the folder when built
        make_digits(tmp_path / "images", per_class=10)
        args += ["--data.data_dir", str(tmp_path / "images" / "labelled")]
    dm = parser.instantiate(parser.parse_args(args)).data
    assert dm.batch_size == 7 and isinstance(dm.num_classes, int) and isinstance(dm.in_channels, int)


def test_package_exports_every_datamodule_and_the_error() -> None:
    expected = {"DataError", "DigitsDataModule", "MNISTDataModule", "CIFAR10DataModule", "CIFAR100DataModule"}
    assert expected | {"ImageNetDataModule"} <= set(data.__all__)
    assert all(hasattr(data, name) for name in data.__all__)
