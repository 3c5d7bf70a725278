"""The one way this project reads a ``torch.save`` file: weights and plain data, never code.

Checkpoints, weight files and search outputs are exchanged between people, and a
pickle can carry a ``__reduce__`` that runs any command when it is unpickled. Every
read here is ``torch.load(..., weights_only=True)`` (PyTorch's restricted unpickler,
the default since PyTorch 2.6 for exactly this reason), with the few extra types our
own files need in :data:`SAFE_GLOBALS`. A file that asks for anything else is refused
with one line naming the file and the first global it wants; the fix for a legitimate
file is to register its type here, never to turn the restriction off.

Before a file is unpickled its zip archive is checked against the CRC-32 that
``torch.save`` wrote for every member: torch's reader does not check them, so a
checkpoint with flipped bytes inside a weight tensor would otherwise be evaluated as
if it were whole.

Nothing here imports Lightning: ``models/`` loads weight files through it too.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .errors import UserError

# Types our own checkpoints need beyond torch's weights-only defaults (tensors, storages,
# dicts, lists, tuples, str, numbers, None, OrderedDict). None today: module.py stores
# hyperparameters as plain data precisely so that this list can stay empty.
SAFE_GLOBALS: list[Any] = []

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive (since PyTorch 1.6)
_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL (\S+?)(?: was|\s|$)")  # torch's weights-only refusal names it
_MAX_REASON_CHARS = 160


class FileLoadError(UserError, ValueError):
    """A file that cannot be read: missing, damaged, not what it claims to be, or wanting to run code."""


class UnsafeFileError(FileLoadError):
    """A pickle that asks for a global outside the weights-only allow-list (a file that would run code)."""


def safe_load(path: str | os.PathLike[str], what: str = "checkpoint", *, mmap: bool = True, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``, after checking the archive's checksums.

    Args:
        path: A local file written by ``torch.save``.
        what: What the file is, for messages (``"checkpoint"``, ``"weights file"``).
        mmap: Map the tensors instead of reading them (zip files only; a legacy
            pre-1.6 file is read whole).
        map_location: As for ``torch.load``.

    Returns:
        What the file holds.

    Raises:
        UnsafeFileError: The pickle wants a global that no weights file needs.
        FileLoadError: The file is missing, unreadable, truncated, damaged or not a ``torch.save`` file.
    """
    path = Path(path)
    where = f"{what} '{os.fspath(path)}'"
    is_zip = _check_archive(path, where)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as error:
        unsafe = _unsafe_globals(path) or _GLOBAL_IN_MESSAGE.findall(str(error))
        if unsafe:
            raise UnsafeFileError(
                f"{where} wants to import {unsafe[0]}, which a {what} never needs; refusing to load it "
                "(a file must hold tensors and plain data only: ask its author for a state dict or a safetensors file)"
            ) from None
        raise FileLoadError(f"{where} could not be unpickled ({_one_line(error)}); it is corrupt or not a torch.save file") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise FileLoadError(
            f"{where} is incomplete or corrupt (a save was interrupted, or the file was truncated): {_one_line(error)}; "
            "copy or save it again, or pass another file"
        ) from None
    except Exception as error:
        if is_zip:
            raise  # an archive whose checksums held: what failed is a bug, with its traceback
        # Not a zip archive: torch reads it as a pre-1.6 pickle, and text or random bytes make
        # its unpickler fail with whatever error the bytes lead to (KeyError, IndexError, ...).
        raise FileLoadError(
            f"{where} is not a file torch.save wrote ({_one_line(error)}); pass a {what} saved by torch.save or a fit"
        ) from None


def is_zip_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts as a zip archive does (what ``torch.save`` writes); False if it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    except OSError:
        return False


def _check_archive(path: Path, where: str) -> bool:
    """Raise for a missing, unreadable, truncated or damaged file; whether it is a zip archive.

    A legacy (pre-1.6, not zip) file has no checksums to check and is left to ``torch.load``.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(len(_ZIP_MAGIC))
    except FileNotFoundError:
        raise FileLoadError(f"{where} does not exist; check the path") from None
    except IsADirectoryError:
        raise FileLoadError(f"{where} is a directory, not a file; pass the file itself") from None
    except OSError as error:
        raise FileLoadError(f"{where} cannot be read ({_one_line(error)}); check its permissions") from None
    if head != _ZIP_MAGIC:
        if not head.strip(b"\0"):  # empty, or zeros (the size of a write the disk lost)
            raise FileLoadError(
                f"{where} is incomplete or corrupt: it is empty or starts with zero bytes (a save was interrupted); "
                "copy or save it again, or pass another file"
            )
        return False
    stat = path.stat()
    problem = _archive_problem(str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if problem:
        raise FileLoadError(f"{where} {problem}; copy or save it again, or pass another file")
    return True


@lru_cache(maxsize=32)
def _archive_problem(path: str, inode: int, size: int, mtime_ns: int) -> str | None:
    """What fails in the zip archive's own checks ("is ..."), or None. Cached per file version: a command
    reads one checkpoint several times (hyperparameters, callback state, the weights)."""
    del inode, size, mtime_ns  # the cache key: a rewritten file is checked again
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if all(m.CRC == 0 for m in members if m.file_size):  # torch.serialization.set_crc32_options(False)
                return None
            bad = archive.testzip()  # reads every member and compares its CRC-32
    except zipfile.BadZipFile as error:
        return f"is incomplete or corrupt (a save was interrupted, or the file was truncated): {_one_line(error)}"
    except (OSError, EOFError, ValueError, NotImplementedError) as error:
        return f"is incomplete or corrupt: its archive cannot be read ({_one_line(error)})"
    if bad is None:
        return None
    return f"is damaged: its part {bad} fails the CRC-32 check written with it (its bytes changed after it was saved)"


def _unsafe_globals(path: Path) -> list[str]:
    """The globals the file's pickle wants beyond the allow-list, in the order it asks for them."""
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - a pickle too broken to scan: the caller reports it as corrupt
        return []


def _one_line(error: BaseException) -> str:
    """``"TypeName: message"`` on one line, shortened (torch's errors span many lines)."""
    message = " ".join(str(error).split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


__all__ = ["SAFE_GLOBALS", "FileLoadError", "UnsafeFileError", "is_zip_archive", "safe_load"]
