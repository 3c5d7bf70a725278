"""MNISTDataModule on real IDX files written from scikit-learn's digits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_lightning.data import DataConfigError, DataError, MNISTDataModule
from tests.fixtures_data import TEST_SIZE, TRAIN_SIZE, digits, write_mnist_idx


def _ready(root: Path, **kwargs) -> MNISTDataModule:
    dm = MNISTDataModule(data_dir=str(root), val_size=200, num_workers=0, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _refusal(root: Path, match: str, **kwargs) -> str:
    """The message of the ``DataError`` that getting MNIST in ``root`` ready raises; it must match ``match``."""
    with pytest.raises(DataError, match=match) as caught:
        _ready(root, **kwargs)
    return str(caught.value)


def test_loads_the_idx_files_into_normalised_batches(mnist_root: Path) -> None:
    dm = _ready(mnist_root, batch_size=50)
    assert (dm.num_classes, dm.in_channels) == (10, 1)
    assert dm.class_names[3] == "3 - three" and len(dm.class_names) == 10
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (TRAIN_SIZE - 200, 200, TEST_SIZE)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (50, 1, 28, 28) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() <= 9


def test_test_images_are_the_files_pixels_normalised_with_mnists_statistics(mnist_root: Path) -> None:
    dm = _ready(mnist_root)
    raw, labels = digits(28)
    image, label = dm.test_set[0]
    expected = (torch.as_tensor(raw[TRAIN_SIZE], dtype=torch.float32) / 255 - 0.1307) / 0.3081
    assert torch.allclose(image[0], expected, atol=1e-5) and label == labels[TRAIN_SIZE]


def test_the_validation_split_depends_on_the_seed_only(mnist_root: Path) -> None:
    def val_images(seed: int) -> torch.Tensor:
        return _ready(mnist_root, seed=seed).val_set.images

    assert torch.equal(val_images(0), val_images(0))
    assert not torch.equal(val_images(0), val_images(1))
    dm = _ready(mnist_root, seed=0)
    # Train and val partition the training file: together they are all its images.
    together = torch.cat([dm.train_set.images, dm.val_set.images]).flatten(1)
    written = torch.as_tensor(digits(28)[0][:TRAIN_SIZE]).flatten(1)
    assert torch.equal(together.unique(dim=0), written.unique(dim=0))


def test_missing_files_name_the_folder_and_both_ways_out(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        _ready(tmp_path / "nowhere")
    message = str(caught.value)
    assert str(tmp_path / "nowhere" / "MNIST") in message and "train-images-idx3-ubyte" in message
    assert "--data.download true" in message and "--data.data_dir" in message


def test_a_truncated_image_file_is_named(tmp_path: Path) -> None:
    raw = write_mnist_idx(tmp_path)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100_000])  # as a download cut off half-way leaves it
    message = _refusal(tmp_path, "looks truncated")
    assert str(path) in message and "download again" in message


def test_a_file_that_is_not_idx_is_named(tmp_path: Path) -> None:
    raw = write_mnist_idx(tmp_path)
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_text("<html>404 Not Found</html>")  # a proxy's error page saved under the file's name
    assert str(path) in _refusal(tmp_path, "not an MNIST IDX file")


def test_images_and_labels_from_different_downloads_are_refused(tmp_path: Path) -> None:
    raw = write_mnist_idx(tmp_path)
    labels = raw / "train-labels-idx1-ubyte"
    data = np.frombuffer(labels.read_bytes()[8:], dtype=np.uint8)[:-1]
    labels.write_bytes(np.array([2049, len(data)], dtype=">i4").tobytes() + data.tobytes())
    assert str(labels) in _refusal(tmp_path, "different downloads")


def test_out_of_range_labels_are_refused(tmp_path: Path) -> None:
    raw = write_mnist_idx(tmp_path)
    labels = raw / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8 + 5] = 12
    labels.write_bytes(bytes(data))
    assert str(labels) in _refusal(tmp_path, "label 12 at position 5")


def test_download_does_not_touch_a_folder_that_is_there_but_incomplete(tmp_path: Path) -> None:
    raw = write_mnist_idx(tmp_path)
    (raw / "t10k-images-idx3-ubyte").unlink()
    message = _refusal(tmp_path, "exists but is incomplete", download=True)
    assert str(tmp_path / "MNIST") in message and "t10k-images-idx3-ubyte" in message
    assert (raw / "train-images-idx3-ubyte").is_file()


class _LocalMirrorMNIST(MNISTDataModule):
    """MNIST whose "download" copies real IDX files from a local folder instead of the network.

    Only the fetching is replaced; prepare_data's staging, the rename into place and
    setup's reading are the real ones.
    """

    mirror: Path
    fail_after_first_file = False

    def _download(self, root: Path) -> None:
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in sorted(p.name for p in self.mirror.iterdir()):
            shutil.copy(self.mirror / name, raw / name)
            if self.fail_after_first_file:
                raise ConnectionResetError("connection reset by peer")


def test_a_download_appears_complete_in_data_dir(tmp_path: Path, mnist_root: Path) -> None:
    class Mirror(_LocalMirrorMNIST):
        mirror = mnist_root / "MNIST" / "raw"

    dm = Mirror(data_dir=str(tmp_path), download=True, val_size=200, num_workers=0)
    dm.prepare_data()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MNIST"]  # no scratch folder left
    dm.setup("fit")
    assert len(dm.test_set) == TEST_SIZE


def test_a_failed_download_leaves_nothing_that_looks_like_mnist(tmp_path: Path, mnist_root: Path) -> None:
    class Failing(_LocalMirrorMNIST):
        mirror = mnist_root / "MNIST" / "raw"
        fail_after_first_file = True

    dm = Failing(data_dir=str(tmp_path), download=True, val_size=200, num_workers=0)
    with pytest.raises(DataError, match="ConnectionResetError") as caught:
        dm.prepare_data()
    assert f"nothing was written to {tmp_path / 'MNIST'}" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    # The next run without download says the data is missing, instead of reading half of it.
    with pytest.raises(DataError, match="MNIST not found"):
        _ready(tmp_path)


def test_val_size_larger_than_the_training_file_is_named(mnist_root: Path) -> None:
    with pytest.raises(DataConfigError, match=f"val_size={TRAIN_SIZE}.*holds {TRAIN_SIZE} images"):
        MNISTDataModule(data_dir=str(mnist_root), val_size=TRAIN_SIZE, num_workers=0).setup("fit")
