"""Writes that fail because the disk is full or a file-size limit was reached.

Such a write fails with ``OSError`` ``ENOSPC`` (no space left), ``EDQUOT`` (quota used
up) or ``EFBIG`` (the file-size limit, ``ulimit -f``). That is not a bug of the
program: the user frees space or writes elsewhere, so the CLI says it in one line
naming the file (:func:`storage_full_message`), wherever the write was: a checkpoint,
``config.yaml``, ``metrics.csv``, predictions, an export.

Over ``ulimit -f`` the kernel sends ``SIGXFSZ``, whose default action kills the process
without a word; CPython ignores it from start-up, so the write fails with ``EFBIG``
instead and is reported like a full disk (``tests/test_disk_full.py`` checks it).
"""

from __future__ import annotations

import errno
import io
import os
import traceback
from pathlib import Path

# errno -> what happened, in the user's words.
_WHAT = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file-size limit was reached",
}
_FIX = {
    errno.ENOSPC: "free space on that disk or write elsewhere (a fit: --trainer.default_root_dir)",
    errno.EDQUOT: "free space within your quota or write elsewhere (a fit: --trainer.default_root_dir)",
    errno.EFBIG: "raise the limit (`ulimit -f unlimited`) or write to a filesystem that allows larger files",
}


def write_atomically(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a hidden file beside it and one rename.

    A reader sees the old file or the new one, never a mixture; a write that fails (a
    full disk, a kill) leaves the old file as it was and removes what it wrote, except
    after ``kill -9``, when a hidden ``.<name>.<pid>.tmp`` may remain.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(scratch, "wb") as file:
            file.write(data.encode() if isinstance(data, str) else data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


class StorageFullError(OSError):
    """A write that failed for lack of space (or over a size limit), with what it left intact.

    Args:
        cause: The ``OSError`` of the failed write.
        path: The file that could not be written.
        kept: What the failure left as it was, for the message ("the previous last.ckpt is unchanged").
    """

    def __init__(self, cause: OSError, path: str | os.PathLike[str], kept: str = "") -> None:
        super().__init__(cause.errno, cause.strerror or os.strerror(cause.errno or 0), os.fspath(path))
        self.kept = kept


def storage_full(exc: BaseException) -> OSError | None:
    """The full-disk (or size-limit) ``OSError`` behind ``exc``, or None.

    Libraries report such a write in their own words (torch's zip writer raises
    ``RuntimeError: ... unexpected pos``) while handling the ``OSError``, so the whole
    chain (causes and contexts) is searched; of several, the one :func:`storage_full_message` names.
    """
    found = _storage_errors(exc)
    return found[0][0] if found else None


def storage_full_message(exc: BaseException) -> str | None:
    """One line for a write that failed for lack of space or over a size limit; None for any other error.

    ``"cannot write <file>: the disk is full (ENOSPC: No space left on device); <what
    was kept>; free space on that disk or write elsewhere (--trainer.default_root_dir)"``.
    """
    found = _storage_errors(exc)
    if not found:
        return None
    error, path = found[0]
    code = errno.errorcode.get(error.errno, str(error.errno))
    reason = f"{_WHAT[error.errno]} ({code}: {error.strerror or os.strerror(error.errno)})"
    parts = [f"cannot write {path or 'a file'}: {reason}", getattr(error, "kept", ""), _FIX[error.errno]]
    return "; ".join(part for part in parts if part)


def _storage_errors(exc: BaseException) -> list[tuple[OSError, str | None]]:
    """The full-disk ``OSError`` objects in ``exc``'s chain with the file each names, the most telling first.

    Innermost (the first to happen) first, but a :class:`StorageFullError` (which names the
    file the user knows) before an error naming its file, and that before one whose file
    is only found in its traceback, and that before one naming none.
    """
    found = [link for link in reversed(_chain(exc)) if isinstance(link, OSError) and link.errno in _WHAT]
    named = [(link, link.filename or _file_being_written(link)) for link in found]
    return sorted(named, key=lambda pair: (not isinstance(pair[0], StorageFullError), not pair[0].filename, pair[1] is None))


def _file_being_written(error: OSError) -> str | None:
    """The name of the open file in the innermost frame the error passed through, if any.

    ``file.write()`` and ``close()`` raise without a file name (only ``open()`` sets
    ``filename``); the file object that failed is still a local of the function that
    wrote it (Lightning's CSV writer, jsonargparse's config dump, ``csv.writer`` users).
    """
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
    for frame in reversed(frames):
        for value in list(frame.f_locals.values()):
            if isinstance(value, io.IOBase):
                try:
                    name = value.name
                except (AttributeError, ValueError):  # no name, or a closed wrapper that will not tell
                    continue
                if isinstance(name, (str, bytes, os.PathLike)):
                    return str(Path(os.fsdecode(name)).resolve())
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first.

    Unlike ``cli_errors``' walk, a context hidden by ``raise ... from None`` is followed
    too: a library rephrasing a failed write must not hide that the disk is full.
    """
    links: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in links):
        links.append(link)
        link = link.__cause__ or link.__context__
    return links
