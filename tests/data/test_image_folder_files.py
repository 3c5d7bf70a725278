"""Image files of every format and mode read as training reads them; each real file counted once; predict's inputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from resnet_lightning.data import DataError, ImageFolderDataModule, ImageNetDataModule
from resnet_lightning.data.digit_images import make_digits
from resnet_lightning.data.images import load_image
from tests.fixtures_data import SAME_AS_SOURCE, UNREADABLE, write_image_folder, write_mixed_images


@pytest.fixture(scope="module")
def digits_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``labelled/{zero,one,two}/`` with 6 PNGs each (16x16 grey), ``unlabelled/`` and ``mixed/`` (write_mixed_images)."""
    root = make_digits(tmp_path_factory.mktemp("digits"), classes=3, size=16, per_class=6, unlabelled=3)
    write_mixed_images(root / "mixed", min((root / "unlabelled").iterdir()))
    return root


def options(**kwargs) -> dict:
    return dict(dict(image_size=16, batch_size=4, num_workers=0, mean=[0.3] * 3, std=[0.3] * 3), **kwargs)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_every_format_and_mode_reads_as_the_original(digits_tree, mode) -> None:
    mixed = digits_tree / "mixed"
    source = np.asarray(load_image(mixed / "source.png", mode))
    for name in SAME_AS_SOURCE:
        np.testing.assert_array_equal(np.asarray(load_image(mixed / name, mode)), source, err_msg=name)
    for name in ("large.jpg", "one_bit.png"):  # other pictures: still read, in the mode asked for
        assert load_image(mixed / name, mode).mode == mode
    # Without the rules (PIL's plain convert) these three differ: orientation, 16 bits, transparency.
    for name in ("exif_rotated.png", "sixteen_bit.png", "transparent.png"):
        assert not np.array_equal(np.asarray(Image.open(mixed / name).convert(mode)), source), name


def test_predict_set_has_every_file_and_says_why_one_cannot_be_read(digits_tree) -> None:
    mixed = digits_tree / "mixed"
    dm = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), predict_path=str(mixed), **options())
    dm.setup("predict")
    assert [p.name for p in dm.predict_set.paths] == sorted(p.name for p in mixed.iterdir())  # every file, sorted
    items = {p.name: dm.predict_set[i] for i, p in enumerate(dm.predict_set.paths)}
    expected = dm.eval_transform(Image.open(mixed / "source.png").convert("RGB"))  # (3, 16, 16)
    for name in SAME_AS_SOURCE:
        image, label, problem = items[name]
        assert torch.equal(image, expected) and label == -1 and problem == "", name
    assert items["large.jpg"][0].shape == expected.shape and not torch.equal(items["large.jpg"][0], expected)
    assert items["notes.txt"][2] == "not an image file PIL can read"
    assert items["truncated.png"][2].startswith("truncated or corrupt (OSError: image file is truncated")
    for name in UNREADABLE:
        assert items[name][0].shape == expected.shape  # a blank of the same shape, so the batch stacks
    batches = list(DataLoader(dm.predict_set, batch_size=5, num_workers=1))  # the reasons cross from a worker
    problems = [p for batch in batches for p in batch[2]]
    assert [bool(p) for p in problems] == [p.name in UNREADABLE for p in dm.predict_set.paths]


def test_a_symlink_loop_and_duplicate_links_count_each_file_once(digits_tree, tmp_path, capsys) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(digits_tree / "labelled", tree)
    zero, one = tree / "zero", tree / "one"
    first = min(zero.iterdir())
    os.symlink(zero.resolve(), zero / "again")  # a loop: the class folder inside itself
    os.symlink("..", one / "up")  # a loop through the root: every class folder again
    os.symlink("../zero", one / "zeros")  # another class's folder: not images of "one"
    os.symlink(first.resolve(), zero / "copy.png")  # a second link to one file
    os.link(first, tree / "two" / "hard.png")  # a hard link, in another class
    dm = ImageFolderDataModule(data_dir=str(tree), val_fraction=0.2, test_fraction=0.2, **options())
    dm.setup("fit")
    sets = (dm.train_set, dm.val_set, dm.test_set)
    real = [os.path.realpath(p) for s in sets for p in s.paths]
    assert len(real) == 18 and len(set(real)) == 18  # 3 classes x 6 files, each in one split
    for s in sets:  # and with its own class
        assert all(Path(os.path.realpath(p)).parent.name == dm.class_names[label] for p, label in zip(s.paths, s.labels))
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and err.count("\n") == 1
    for name in ("zero/again -> ", "one/up -> ", "one/zeros -> ", "zero/copy.png -> "):
        assert name in err, name
    assert f"zero/{first.name} -> {tree / 'two' / 'hard.png'}" in err  # classes are read in name order: two first
    assert "skipped 5 link(s) to a file or folder already counted" in err


def test_a_file_linked_into_train_and_val_is_in_one_split(digits_tree, tmp_path, capsys) -> None:
    for split in ("train", "val"):
        shutil.copytree(digits_tree / "labelled", tmp_path / split)
    shared = min((tmp_path / "train" / "one").iterdir())
    os.symlink(shared.resolve(), tmp_path / "val" / "one" / "leak.png")
    dm = ImageFolderDataModule(data_dir=str(tmp_path), **options())
    dm.setup("fit")
    assert len(dm.train_set) == 18 and len(dm.val_set) == 18 and shared in dm.train_set.paths
    assert tmp_path / "val" / "one" / "leak.png" not in dm.val_set.paths
    assert "val/one/leak.png -> " in capsys.readouterr().err


def test_class_folders_skip_other_files_with_one_warning(digits_tree, tmp_path, capsys) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(digits_tree / "labelled", tree)
    (tree / "one" / "notes.txt").write_text("hello")
    shutil.copy(digits_tree / "mixed" / "palette.gif", tree / "one" / "extra.gif")  # GIF: an image now
    dm = ImageFolderDataModule(data_dir=str(tree), val_fraction=0.2, test_fraction=0.2, **options())
    dm.setup("fit")
    paths = [p.name for s in (dm.train_set, dm.val_set, dm.test_set) for p in s.paths]
    assert "extra.gif" in paths and "notes.txt" not in paths
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "skipped 1 file(s)" in err and "one/notes.txt" in err
    for path in (tree / "two").iterdir():
        path.rename(path.with_suffix(".txt"))
    with pytest.raises(DataError, match=r"class folder\(s\) without images .*two; add images or delete the folder"):
        ImageFolderDataModule(data_dir=str(tree), **options()).setup("fit")


def test_predict_path_problems_are_one_line(digits_tree, tmp_path) -> None:
    def setup(path: Path) -> ImageFolderDataModule:
        dm = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), predict_path=str(path), **options())
        dm.setup("predict")
        return dm

    cases = {
        tmp_path / "missing": r"--data.predict_path .*missing does not exist; pass an image file or a folder of images",
        tmp_path / "empty": r"--data.predict_path .*empty holds no files; pass an image file",
        tmp_path / "texts": r"--data.predict_path .*texts holds 2 file\(s\) but no image PIL can read \(e.g. .*a.txt: not an image",
        digits_tree / "mixed" / "notes.txt": r"--data.predict_path .*notes.txt cannot be read as an image: not an image file PIL",
        digits_tree / "mixed" / "truncated.png": r"--data.predict_path .*truncated.png cannot be read as an image: truncated or corrupt",
        tmp_path / "dangling.png": r"--data.predict_path .*dangling.png is neither a file nor a folder \(a broken link\?\)",
    }
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_text("hidden files are not inputs")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("a")
    (tmp_path / "texts" / "b.csv").write_text("b")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    for path, message in cases.items():
        with pytest.raises(DataError, match=message) as raised:
            setup(path)
        assert "\n" not in str(raised.value)
    # A loop inside a folder to predict does not repeat its files; two links to one file are two rows.
    folder = tmp_path / "photos"
    shutil.copytree(digits_tree / "unlabelled", folder)
    os.symlink("..", folder / "loop")
    os.symlink(min(folder.iterdir()).name, folder / "alias.png")
    os.mkfifo(folder / "pipe.png")  # reading it would wait forever: a row saying what it is instead
    predict_set = setup(folder).predict_set
    assert sorted(p.name for p in predict_set.paths) == sorted(p.name for p in folder.iterdir() if p.name != "loop")
    assert predict_set[predict_set.paths.index(folder / "pipe.png")][2] == "not a regular file (a pipe, socket or device)"


def test_imagenet_layout_counts_each_file_once_too(tmp_path, capsys) -> None:
    write_image_folder(tmp_path, num_classes=2, train_per_class=4, val_per_class=2, size=16)
    os.symlink("..", tmp_path / "train" / "n00000000" / "loop")  # back to train/: both classes again
    dm = ImageNetDataModule(data_dir=str(tmp_path), image_size=16, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert len(dm.train_set) == 8 and len({os.path.realpath(p) for p, _ in dm.train_set.samples}) == 8
    assert "n00000000/loop -> " in capsys.readouterr().err


def test_data_dir_and_predict_path_that_are_no_folder_are_one_line(digits_tree, tmp_path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DataError, match=r"image folder .*afile is a file, not a folder; expected"):
        ImageFolderDataModule(data_dir=str(afile))
    (tmp_path / "single" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match=r"single has one class folder \(cats\); a classifier needs at least two"):
        ImageFolderDataModule(data_dir=str(tmp_path / "single"))
    for option in ("data_dir", "predict_path"):  # "" would be the working directory, everything below it
        kwargs = {"data_dir": str(digits_tree / "labelled"), option: " "}
        with pytest.raises(DataError, match=rf"--data.{option} is empty; give (a|an image file or a) folder"):
            ImageFolderDataModule(**kwargs)


def test_a_checkpoint_evaluates_at_its_training_sizes(digits_tree, capsys) -> None:
    trained = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), **options(eval_resize_size=20))
    other = ImageFolderDataModule(data_dir=str(digits_tree / "labelled"), predict_path=str(digits_tree / "mixed"), **options(image_size=8))
    other.setup("predict")
    other.load_state_dict(trained.state_dict())  # as predict --ckpt_path restores it
    assert (other.eval_resize_size, other.eval_crop_size) == (20, 16) and other.predict_set[0][0].shape == (3, 16, 16)
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet-lightning: warning: evaluating images resized to 20 and centre-cropped to 16, as the checkpoint")
    assert "not 9 and 8" in err and "\n" not in err
