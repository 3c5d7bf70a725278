"""Checkpoint saves that a ``kill -9`` or a power cut cannot leave half-written.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction: the bytes
go to a temporary file in ``$TMPDIR``, which is then *moved* onto the target. When
``$TMPDIR`` is on another filesystem (``/dev/shm``, a node-local scratch disk) the
move is a copy into the target itself, so a process killed during it leaves a
truncated ``last.ckpt``, and the temporary file stays behind in ``$TMPDIR``.

:class:`AtomicCheckpointIO` writes the temporary file next to the target instead,
where ``os.replace`` is an atomic rename: a reader sees the old checkpoint or the
new one, never a mixture. :func:`checkpoint_problem` tells a complete checkpoint
from a damaged one before Lightning fails on it deep inside ``fit``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins import TorchCheckpointIO
from typing_extensions import override

from .safe_load import (
    SAFE_GLOBALS,
    FileLoadError,
    UnsafeFileError,
    is_zip_archive,
    safe_load,
)
from .storage import StorageFullError, atomic_file, remove_stale_partials, storage_full


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic and durable.

    A local checkpoint is written to a hidden ``.<name>.partial-<pid>-<token>`` file
    in the target's own directory, flushed and fsync'ed, renamed onto the target with
    ``os.replace``, and the directory is fsync'ed so that the rename survives a power
    cut too (:func:`~resnet_lightning.storage.atomic_file`). A save that fails removes
    its partial file (a full disk or a file-size limit raises
    :class:`~resnet_lightning.storage.StorageFullError` naming the target); partial files
    left by killed processes are removed by the next save into the same directory.
    Remote paths (``s3://`` and other fsspec URLs) are saved by Lightning's
    ``TorchCheckpointIO``.

    Use it as ``Trainer(plugins=[AtomicCheckpointIO()])``.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        """Save ``checkpoint`` to ``path``, replacing any file there in one atomic step.

        Args:
            checkpoint: What ``torch.save`` writes (Lightning's ``dump_checkpoint`` dict).
            path: The checkpoint file; a local path or a ``file://`` URL is saved
                atomically, any other URL by ``TorchCheckpointIO``.
            storage_options: Not supported, as in ``TorchCheckpointIO`` (a ``TypeError``).
        """
        fs, local_path = url_to_fs(os.fspath(path))
        if storage_options is not None or not isinstance(fs, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(target.parent)
        existed = target.is_file()
        try:
            with atomic_file(target) as file:  # flushed and fsync'ed before the rename, the directory after
                torch.save(checkpoint, file)
        except BaseException as error:  # KeyboardInterrupt too: atomic_file has removed its partial file
            full = storage_full(error)
            if full is not None and not isinstance(full, StorageFullError):
                # torch's zip writer words it "unexpected pos 374720 vs 374608": say what happened, and where.
                kept = f"the previous {target.name} is unchanged" if existed else f"{target.name} was not written"
                raise StorageFullError(full, target, f"{kept} and no partial file is left") from error
            raise

    @override
    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Load a checkpoint weights-only, whatever ``weights_only`` Lightning passes.

        A local file is read by :func:`read_checkpoint` (checksums, a Lightning checkpoint,
        no code), which the command has usually called already for the same file: it is read
        once. A remote one is read by Lightning's loader with ``weights_only=True`` and the
        same allow-list.
        """
        del weights_only  # never False: a checkpoint is data (see resnet_lightning.safe_load)
        fs, local_path = url_to_fs(os.fspath(path))
        if isinstance(fs, LocalFileSystem) and _on_cpu(map_location):
            # The read the command made already, when it checked the file; the tensors are
            # copied out of the mapping, since training updates optimizer state in place.
            return _copy(read_checkpoint(local_path), tensors=True)
        if isinstance(fs, LocalFileSystem):
            read_checkpoint(local_path)
            return safe_load(local_path, "checkpoint", mmap=False, map_location=map_location)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)


class CheckpointError(FileLoadError):
    """A checkpoint file that is missing, damaged, not a Lightning checkpoint, or wanting to run code."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The Lightning checkpoint at ``path``, read safely (:func:`~resnet_lightning.safe_load.safe_load`), once.

    The tensors are memory-mapped (copy-on-write), not read: hyperparameters and callback
    state cost milliseconds. The archive's checksums are checked and the pickle may hold
    tensors and plain data only, so a hostile file is refused before anything of it runs.
    The result is kept for the file's current version (its inode, size and modification
    time): a command that looks at a checkpoint's hyperparameters, callback state and
    weights, and then has Lightning restore it, reads the file once. Treat it as read-only.

    Args:
        path: A local checkpoint file.

    Raises:
        CheckpointError: ``path`` is missing, damaged, not a Lightning checkpoint, or wants to run code.
    """
    where = f"checkpoint '{os.fspath(path)}'"
    if os.path.exists(path) and not os.path.isfile(path):
        raise CheckpointError(f"{where} is not a file; pass a .ckpt file")
    try:
        version = os.stat(path)
    except OSError:
        version = None  # missing or unreadable: safe_load says which, in the user's words
    if version is None:
        return _read_checkpoint(os.fspath(path), where)
    kept = _read_checkpoint_version(os.path.realpath(path), where, version.st_ino, version.st_size, version.st_mtime_ns)
    return _copy(kept, tensors=False)  # the caller may change what it gets; what is kept stays as read


@lru_cache(maxsize=2)
def _read_checkpoint_version(path: str, where: str, inode: int, size: int, mtime_ns: int) -> dict[str, Any]:
    return _read_checkpoint(path, where)


def _read_checkpoint(path: str, where: str) -> dict[str, Any]:
    try:
        checkpoint = safe_load(path, "checkpoint")
    except UnsafeFileError as error:
        raise CheckpointError(str(error)) from None
    except FileLoadError as error:
        if not os.path.isfile(path):
            raise CheckpointError(str(error)) from None
        if os.path.getsize(path) and not is_zip_archive(path):
            raise CheckpointError(f"{where} is not a checkpoint written by torch.save (not a zip archive); pass a .ckpt file") from None
        raise CheckpointError(f"{error} (e.g. the run's best-*.ckpt)") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{where} is not a Lightning checkpoint (no 'state_dict'); pass a .ckpt file saved by a fit")
    return checkpoint


def _copy(value: Any, tensors: bool) -> Any:
    """``value`` with its dicts and lists copied (and its tensors too, with ``tensors``)."""
    if isinstance(value, dict):
        return type(value)((key, _copy(item, tensors)) for key, item in value.items())
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_copy(item, tensors) for item in value)
    if tensors and isinstance(value, torch.Tensor):
        return value.clone()
    return value


def _on_cpu(map_location: Any) -> bool:
    """Whether ``map_location`` leaves tensors on the CPU, as :func:`read_checkpoint` reads them (Lightning's default)."""
    if callable(map_location):
        probe = torch.empty(0)
        return map_location(probe, "cpu") is probe
    return map_location in (None, "cpu") or map_location == torch.device("cpu")


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the checkpoint at ``path``, in one line; ``None`` if it is sound.

    Only local files are checked: for a URL the answer is ``None``, and Lightning's load
    (through :meth:`AtomicCheckpointIO.load_checkpoint`, weights only) reports what it finds.

    Args:
        path: The checkpoint file.

    Returns:
        ``None``, or a reason that names the file, says what is wrong and what to do.
    """
    fs, local_path = url_to_fs(os.fspath(path))
    if not isinstance(fs, LocalFileSystem):
        return None
    try:
        read_checkpoint(local_path if os.fspath(path).startswith("file:") else path)
    except CheckpointError as error:
        return str(error)
    return None


def require_complete_checkpoint(path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` with :func:`checkpoint_problem`'s reason, if there is one.

    Args:
        path: The checkpoint file.

    Raises:
        CheckpointError: ``path`` is missing, damaged, not a Lightning checkpoint, or wants to run code.
    """
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CheckpointError(problem)
