"""A full disk or a file-size limit while writing is one line naming the file, and loses nothing.

The limits are real: ``RLIMIT_FSIZE`` set in the child process (``ulimit -f``; the
kernel's SIGXFSZ, which CPython ignores, would otherwise kill it: exit 1 is checked),
and a small tmpfs mounted for the test where this user may mount one (root; skipped
elsewhere). The commands are the real CLI in a fresh process.
"""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from fixtures_cli import DIGITS, RUN_NAME
from resnet_lightning.checkpoint_io import AtomicCheckpointIO, checkpoint_problem
from resnet_lightning.storage import StorageFullError, storage_full_message

TINY_FIT = ["fit", "--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}",
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            # last.ckpt only: the resumed fit's first save is the one that meets the limit.
            "--checkpoint.save_top_k", "0"]


def run(*args: str, cwd: Path, file_size_limit: int | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``resnet-lightning ARGS`` in a fresh process (offline W&B, ``env`` added), its files limited to ``file_size_limit`` bytes."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "resnet_lightning", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, WANDB_MODE="offline", **(env or {})), preexec_fn=limit if file_size_limit is not None else None,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 1 (not killed by SIGXFSZ, not 0), no traceback, one error line containing ``words``; that line."""
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("resnet-lightning: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert result.stderr.rstrip().endswith(errors[0])
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root of a one-epoch fit whose run holds last.ckpt (and no other checkpoint)."""
    root = tmp_path_factory.mktemp("finished")
    result = run(*TINY_FIT, "--trainer.max_epochs", "1", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in root.glob(f"{RUN_NAME}/version_0/checkpoints/*")) == ["last.ckpt"]
    return root


def last_ckpt(root: Path) -> Path:
    return root / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt"


def assert_checkpoint_kept(last: Path, digest: str) -> None:
    assert sha256(last) == digest  # untouched, not rewritten
    assert checkpoint_problem(last) is None  # and loads
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]  # no .last.ckpt.partial-* file


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``mount(size)``: a tmpfs of ``size`` bytes at a new folder of ``tmp_path``, unmounted after
    the test; skips where this user cannot mount one."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        point = tmp_path / "tmpfs"
        point.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command to mount a small tmpfs")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"this user cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_fit_over_the_file_size_limit_says_so_and_keeps_last_ckpt(finished_run: Path) -> None:
    last = last_ckpt(finished_run)
    digest = sha256(last)
    # Smaller than a checkpoint, larger than anything else the fit writes.
    result = run(*TINY_FIT, "--trainer.max_epochs", "2", "--ckpt_path", "last", cwd=finished_run,
                 file_size_limit=last.stat().st_size // 2)
    line = assert_one_line_error(result, f"cannot write {last}:", "file-size limit", "EFBIG",
                                 "the previous last.ckpt is unchanged", "ulimit -f")
    assert "unexpected pos" not in line  # torch's zip writer's words
    assert_checkpoint_kept(last, digest)


def test_fit_on_a_full_disk_says_so_and_keeps_last_ckpt(finished_run: Path, small_tmpfs) -> None:
    # Room for the run and half a checkpoint more: the next last.ckpt cannot be written whole.
    root = small_tmpfs(last_ckpt(finished_run).stat().st_size * 3 // 2 + 256 * 1024)
    shutil.copytree(finished_run, root, dirs_exist_ok=True)  # a moved run resumes as itself
    last = last_ckpt(root)
    digest = sha256(last)
    result = run(*TINY_FIT, "--trainer.max_epochs", "2", "--ckpt_path", "last", cwd=root)
    assert_one_line_error(result, f"cannot write {last}:", "the disk is full", "ENOSPC",
                          "the previous last.ckpt is unchanged", "--trainer.default_root_dir")
    assert_checkpoint_kept(last, digest)


def test_a_failed_fit_with_wandb_ends_with_the_error_line(finished_run: Path, tmp_path: Path) -> None:
    """wandb's closing lines (where the run is, how to sync it) used to follow the error, from its exit hook."""
    result = run(*TINY_FIT, "--trainer.max_epochs", "1", "--trainer.logger", "lightning.pytorch.loggers.WandbLogger",
                 cwd=tmp_path, file_size_limit=last_ckpt(finished_run).stat().st_size // 2,
                 env={"WANDB_SILENT": "false", "WANDB_SERVICE": ""})
    assert_one_line_error(result, "cannot write", "last.ckpt", "EFBIG")
    assert "wandb sync" in result.stderr  # said, before the error line


def test_export_over_the_file_size_limit_says_so_and_writes_nothing(finished_run: Path, tmp_path: Path) -> None:
    """torch's zip writer used to abort the process (std::terminate in a destructor) on a failed .pt2 write."""
    last = last_ckpt(finished_run)
    output = tmp_path / "model.pt2"
    result = run("export", "--ckpt_path", str(last), "--format", "pt2", "--output", str(output), cwd=tmp_path,
                 file_size_limit=last.stat().st_size // 4)
    assert_one_line_error(result, f"cannot write {output}:", "EFBIG")
    assert list(tmp_path.iterdir()) == []  # neither the file nor the export's scratch folder


def test_every_write_on_a_full_disk_names_its_file(small_tmpfs) -> None:
    """The class, beyond checkpoints: a write whose OSError carries no file name (write(), close())."""
    root = small_tmpfs(64 * 1024)
    (root / "filler").write_bytes(b"\0" * (64 * 1024 - 4096))  # tmpfs counts whole pages
    with pytest.raises(OSError) as caught:
        (root / "config.yaml").write_text("x" * 65536)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename is None
    assert storage_full_message(caught.value).startswith(f"cannot write {root / 'config.yaml'}: the disk is full")
    assert storage_full_message(FileNotFoundError(errno.ENOENT, "No such file", "x")) is None  # not full: not ours

    # A checkpoint save on the full disk: the named error, and no partial file left.
    with pytest.raises(StorageFullError) as caught:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(100_000)}}, root / "last.ckpt")
    assert caught.value.filename == str(root / "last.ckpt")
    assert sorted(p.name for p in root.iterdir()) == ["config.yaml", "filler"]
