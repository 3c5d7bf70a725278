"""ImageFolderDataModule over real PNG files (scikit-learn's digits), and its one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from resnet_lightning.data import DataConfigError, DataError, ImageFolderDataModule
from resnet_lightning.data.digit_images import make_digits
from tests.fixtures_data import write_image_folder


@pytest.fixture(scope="module")
def digits_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``labelled/{zero,one,two}/`` with 20 PNGs each (16x16 grey) and ``unlabelled/`` with 12."""
    return make_digits(tmp_path_factory.mktemp("digits"), classes=3, size=16, per_class=20)


def options(**kwargs) -> dict:
    return dict(dict(image_size=16, batch_size=8, num_workers=0), **kwargs)


def test_one_folder_split_by_seed_per_class(digits_tree) -> None:
    dm = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), val_fraction=0.2, test_fraction=0.1, **options())
    assert dm.class_names == ["one", "two", "zero"] and dm.num_classes == 3 and dm.in_channels == 3
    dm.setup("fit")
    sizes = [len(dm.train_set), len(dm.val_set), len(dm.test_set)]
    assert sizes == [3 * 14, 3 * 4, 3 * 2]  # 20 per class: 4 val, 2 test, 14 train
    assert sorted(dm.val_set.labels) == [0] * 4 + [1] * 4 + [2] * 4
    paths = [set(map(str, s.paths)) for s in (dm.train_set, dm.val_set, dm.test_set)]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    for path, label in zip(dm.val_set.paths, dm.val_set.labels):
        assert Path(path).parent.name == dm.class_names[label]
    again = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), val_fraction=0.2, test_fraction=0.1, **options())
    again.setup("fit")
    assert again.val_set.paths == dm.val_set.paths  # the same seed, the same split
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 16, 16) and images.dtype == torch.float32 and labels.dtype == torch.int64


def test_mean_and_std_computed_from_the_training_images(digits_tree) -> None:
    # Statistics are taken after the evaluation resize and crop; with no resize they are the files' pixels.
    dm = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), **options(eval_resize_size=16))
    dm.setup("fit")
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255 for p in dm.train_set.paths])
    np.testing.assert_allclose(dm.mean, pixels.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(dm.std, pixels.std(axis=(0, 1, 2)), rtol=1e-6)
    normalised = torch.stack([dm.val_set[i][0] for i in range(len(dm.val_set))])
    assert abs(normalised.mean().item()) < 0.5 and 0.5 < normalised.std().item() < 2  # roughly standardised
    state = dm.state_dict()
    assert state == {"class_names": ["one", "two", "zero"], "mean": dm.mean, "std": dm.std, "preprocess": dm.preprocess()}
    assert {k: state["preprocess"][k] for k in ("mode", "resize", "crop", "mean")} == {"mode": "RGB", "resize": 16, "crop": 16, "mean": dm.mean}
    other = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), mean=[0.5] * 3, std=[0.25] * 3, **options(eval_resize_size=16))
    other.setup("fit")
    other.load_state_dict(state)  # a checkpoint's normalisation replaces the given one, in the sets too
    assert other.mean == dm.mean
    torch.testing.assert_close(other.val_set[0][0], dm.eval_transform(Image.open(other.val_set.paths[0]).convert("RGB")))


def test_train_val_test_folders_and_grayscale(digits_tree, tmp_path) -> None:
    for split, classes in (("train", ["one", "two", "zero"]), ("val", ["one", "zero"]), ("test", ["two"])):
        for name in classes:
            shutil.copytree(digits_tree / "labelled" / name, tmp_path / split / name)
    dm = ImageFolderDataModule(data_dir=str(tmp_path), grayscale=True, mean=[0.3], std=[0.3], **options())
    dm.setup("fit")
    assert dm.in_channels == 1 and dm.num_classes == 3
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (60, 40, 20)  # val/ and test/ used as they are
    assert set(dm.val_set.labels) == {0, 2} and set(dm.test_set.labels) == {1}  # train's class indices
    assert dm.train_set[0][0].shape == (1, 16, 16)


def test_predict_path_folder_or_one_image(digits_tree) -> None:
    dm = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), predict_path=str(digits_tree / "unlabelled"), **options())
    dm.setup("predict")
    assert len(dm.predict_set) == 12 and set(dm.predict_set.labels) == {-1}
    batches = list(dm.predict_dataloader())
    assert sum(len(b[0]) for b in batches) == 12
    one = sorted((digits_tree / "unlabelled").iterdir())[0]
    dm = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), predict_path=str(one), **options())
    dm.setup("predict")
    assert dm.predict_set.paths == [one]


def test_user_errors_are_one_line_naming_the_path(digits_tree, tmp_path) -> None:
    with pytest.raises(DataError, match=r"image folder .*nowhere does not exist.*digit_images DIR"):
        ImageFolderDataModule(data_dir=str(tmp_path / "nowhere"))
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(next((digits_tree / "unlabelled").iterdir()), loose / "a.png")
    with pytest.raises(DataError, match=r"loose has no class sub-folders \(it holds 1 images directly; move each"):
        ImageFolderDataModule(data_dir=str(loose))
    tree = tmp_path / "tree"
    shutil.copytree(digits_tree / "labelled", tree)
    (tree / "three").mkdir()
    dm = ImageFolderDataModule(data_dir=str(tree), **options())
    with pytest.raises(DataError, match=r"class folder\(s\) without images .*three; add images or delete the folder"):
        dm.setup("fit")
    (tree / "three").rmdir()
    bad = sorted((tree / "one").iterdir())[0]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dm = ImageFolderDataModule(data_dir=str(tree), mean=[0.5] * 3, std=[0.5] * 3, **options())
    dm.setup("fit")
    owner = next(d for d in (dm.train_set, dm.val_set, dm.test_set) if bad in d.paths)
    with pytest.raises(DataError, match=rf"{bad.name} could not be read as an image: truncated or corrupt"):
        owner[owner.paths.index(bad)]
    with pytest.raises(DataError) as raised:  # from a loader worker: still the one line, not the worker's traceback
        list(DataLoader(owner, batch_size=64, num_workers=1))
    assert str(raised.value).startswith(str(bad)) and "Traceback" not in str(raised.value)
    with pytest.raises(DataConfigError, match=r"num_classes=5 but .* has 3 class folders"):
        ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), num_classes=5)
    with pytest.raises(DataConfigError, match=r"val_fraction=0.6 and test_fraction=0.5"):
        ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(DataConfigError, match=r"mean=\[0.5\] and std=None: give both, with 3 value"):
        ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), mean=[0.5])
    dm = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), predict_path=str(tmp_path / "new"), **options())
    with pytest.raises(DataError, match=r"--data.predict_path .*new does not exist"):
        dm.setup("predict")


@pytest.mark.parametrize(
    ("sizes", "said"),
    [
        ({}, "about 16x16 pixels, far smaller than --data.image_size 224: each is upsampled to 224x224, 196 times"),
        ({"image_size": 32}, "far smaller than --data.image_size 32: each is upsampled to 32x32, 4 times"),
        ({"image_size": 16, "train_crop_size": 48}, "far smaller than --data.train_crop_size 48"),
        ({"image_size": 24}, None),  # 2.25 times the pixels: not worth a line
    ],
)
def test_images_far_smaller_than_the_model_input_get_one_line(tmp_path, capsys, sizes, said) -> None:
    root = write_image_folder(tmp_path / "images", num_classes=2, train_per_class=4, val_per_class=1, size=16)
    ImageFolderDataModule(data_dir=str(root), batch_size=4, num_workers=0, **sizes).setup("fit")
    lines = [line for line in capsys.readouterr().err.splitlines() if "far smaller" in line]
    if said is None:
        assert lines == []
    else:
        assert len(lines) == 1 and said in lines[0] and lines[0].startswith("resnet-lightning: "), lines
        assert lines[0].endswith("--data.image_size 16 trains at their size")
    ImageFolderDataModule(data_dir=str(root), batch_size=4, num_workers=0, **sizes).setup("test")
    assert "far smaller" not in capsys.readouterr().err  # evaluating: the size is the trained model's
