"""storage.atomic_path, the one write-beside-then-rename: the target is whole or untouched, nothing is left beside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resnet_lightning.storage import atomic_file, atomic_path, write_atomically


class Interrupted(Exception):
    """Stands for whatever stops a write half-way (a full disk, Ctrl-C)."""


def test_a_small_file_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_atomically(target, "old")
    with pytest.raises(Interrupted), atomic_file(target) as file:
        file.write(b"half of the new")
        raise Interrupted
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["run.json"]  # no hidden scratch file
    write_atomically(target, b"new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["run.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not mkstemp's 0600


def test_a_workspace_keeps_only_the_target(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "out" / "model.onnx", workspace=True) as staged:
        assert staged.name == "model.onnx" and staged.parent.name.startswith(".model.onnx.partial-")
        staged.write_bytes(b"model")
        (staged.parent / "archive.tar").write_bytes(b"discarded")
    assert os.listdir(tmp_path / "out") == ["model.onnx"]
    with pytest.raises(Interrupted), atomic_path(tmp_path / "out" / "model.onnx", workspace=True) as staged:
        staged.write_bytes(b"half")
        raise Interrupted
    assert os.listdir(tmp_path / "out") == ["model.onnx"] and (tmp_path / "out" / "model.onnx").read_bytes() == b"model"


def test_an_existing_folder_is_kept_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "file").write_text("theirs")
    with atomic_path(target, workspace=True, keep_existing_dir=True) as staged:
        staged.mkdir()
        (staged / "file").write_text("ours")
    assert (target / "file").read_text() == "theirs" and os.listdir(tmp_path) == ["dataset"]
    with pytest.raises(OSError), atomic_path(target, workspace=True) as staged:  # not asked: the rename's error
        staged.mkdir()
        (staged / "file").write_text("ours")
    assert (target / "file").read_text() == "theirs" and os.listdir(tmp_path) == ["dataset"]
