"""CIFAR10DataModule / CIFAR100DataModule reading real CIFAR pickles (written from scikit-learn's digits)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_lightning.data import CIFAR10DataModule, CIFAR100DataModule, DataError
from resnet_lightning.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from tests.fixtures_data import TEST_SIZE, TRAIN_SIZE, cifar100_fine_labels, digits, write_cifar10, write_cifar100

BOTH = pytest.mark.parametrize(
    ("cls", "write", "first_file"),
    [(CIFAR10DataModule, write_cifar10, "data_batch_1"), (CIFAR100DataModule, write_cifar100, "train")],
    ids=["cifar10", "cifar100"],
)


def _setup(root: Path, cls: type[CIFAR10DataModule] = CIFAR10DataModule, **kwargs) -> CIFAR10DataModule:
    dm = cls(data_dir=str(root), **dict(dict(val_size=100, num_workers=0), **kwargs))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _unnormalise(dm: CIFAR10DataModule, image: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(dm.mean).view(3, 1, 1), torch.tensor(dm.std).view(3, 1, 1)
    return ((image * std + mean) * 255).round()


@BOTH
def test_loads_pickles_as_normalised_batches(cifar_root: Path, cls, write, first_file) -> None:
    dm = _setup(cifar_root, cls, batch_size=64)
    num_classes = 10 if cls is CIFAR10DataModule else 100
    assert (dm.num_classes, dm.in_channels) == (num_classes, 3)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (TRAIN_SIZE - 100, 100, TEST_SIZE)
    assert len(dm.class_names) == num_classes
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (64,) and labels.dtype == torch.int64
    every_label = torch.cat([dm.train_set.labels, dm.val_set.labels, dm.test_set.labels])
    assert every_label.min() == 0 and every_label.max() == num_classes - 1


@BOTH
def test_rows_are_read_channel_major(cifar_root: Path, cls, write, first_file) -> None:
    # The fixture's channels are (digit, 255 - digit, digit // 2); a reader that took the
    # 3072 values as height-width-channel would mix them up.
    dm = _setup(cifar_root, cls)
    expected_images, expected_labels = digits(32, rgb=True)
    if cls is CIFAR100DataModule:
        expected_labels = cifar100_fine_labels(expected_labels)
    for index in (0, 7, TEST_SIZE - 1):
        image, label = dm.test_set[index]
        pixels = _unnormalise(dm, image)
        assert torch.equal(pixels, torch.from_numpy(expected_images[TRAIN_SIZE + index]).float())
        assert torch.equal(pixels[1], 255 - pixels[0]) and label == expected_labels[TRAIN_SIZE + index]


def test_normalisation_uses_cifar10_statistics(cifar_root: Path) -> None:
    dm = _setup(cifar_root)
    assert (dm.mean, dm.std) == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    raw = dm.test_set.images[3].float() / 255
    expected = (raw - torch.tensor(CIFAR10_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR10_STD).view(3, 1, 1)
    torch.testing.assert_close(dm.test_set[3][0], expected)


def test_training_images_are_augmented_and_validation_images_are_not(cifar_root: Path) -> None:
    dm = _setup(cifar_root)
    torch.manual_seed(0)
    # Validation images come out of the training file but must look like test images:
    # the same image every time, exactly the stored pixels normalised.
    first, second = dm.val_set[4][0], dm.val_set[4][0]
    assert torch.equal(first, second)
    torch.testing.assert_close(first, dm.eval_transform(dm.val_set.images[4]))
    # The training set pads by 4 (zeros), crops 32x32 at random and flips at random
    # (He et al. 2015): every draw is one of those 9 x 9 x 2 views, and 20 draws
    # give several different ones.
    raw = dm.train_set.images[0]
    padded = torch.nn.functional.pad(raw, (4, 4, 4, 4))  # (3, 40, 40)
    views = [padded[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
    candidates = torch.stack([dm.eval_transform(v) for view in views for v in (view, view.flip(-1))])
    draws = torch.stack([dm.train_set[0][0] for _ in range(20)])
    matches = (draws[:, None] - candidates[None]).abs().flatten(2).amax(-1) < 1e-5  # (20, 162)
    assert matches.any(1).all()
    assert len(set(matches.float().argmax(1).tolist())) > 3


def test_seed_decides_the_validation_split(cifar_root: Path) -> None:
    first = _setup(cifar_root, seed=5).val_set.images
    assert torch.equal(_setup(cifar_root, seed=5).val_set.images, first)
    assert not torch.equal(_setup(cifar_root, seed=6).val_set.images, first)


def test_loads_pickles_written_by_numpy_1_and_python_2(tmp_path: Path) -> None:
    # The official files name numpy's module "numpy.core.multiarray" (numpy 2 calls it
    # numpy._core); the reader's allow-list must accept that spelling.
    path = write_cifar10(tmp_path) / "data_batch_1"
    old_style = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old_style != path.read_bytes()
    path.write_bytes(old_style)
    assert len(_setup(tmp_path).train_set) == TRAIN_SIZE - 100


@BOTH
def test_truncated_pickle_is_named(tmp_path: Path, cls, write, first_file) -> None:
    path = write(tmp_path) / first_file
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted copy
    with pytest.raises(DataError, match="truncated or corrupt") as error:
        _setup(tmp_path, cls)
    assert str(path) in str(error.value) and "download again with --data.download true" in str(error.value)


def test_wrong_array_shape_is_named(tmp_path: Path) -> None:
    path = write_cifar10(tmp_path) / "test_batch"
    with open(path, "rb") as f:
        batch = pickle.load(f)
    batch["data"] = batch["data"][:, :1024]  # a grey 32x32 image per row, not CIFAR
    with open(path, "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(DataError, match=r"shape \(N, 3072\)") as error:
        _setup(tmp_path)
    assert str(path) in str(error.value)


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = write_cifar10(tmp_path) / "data_batch_2"
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [RunsCode()]}, f)
    with pytest.raises(DataError, match="refusing to load") as error:
        _setup(tmp_path)
    assert str(path) in str(error.value) and not marker.exists()


@BOTH
def test_missing_files_are_listed_with_what_to_do(tmp_path: Path, cls, write, first_file) -> None:
    folder = write(tmp_path)
    (folder / first_file).unlink()
    with pytest.raises(DataError) as error:
        _setup(tmp_path, cls)
    message = str(error.value)
    assert str(folder) in message and first_file in message
    assert "--data.download true" in message and "--data.data_dir" in message
