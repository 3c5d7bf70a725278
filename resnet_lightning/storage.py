"""Writing files: one write-beside-then-rename, and writes that fail for lack of space.

:func:`atomic_path` is how every file and folder the package makes is put in place
(:func:`write_atomically` for small files, checkpoints, exports, downloaded datasets):
written under a hidden name beside its target, then renamed onto it in one step.

A write that fails because the disk is full or a file-size limit was reached fails
with ``OSError`` ``ENOSPC`` (no space left), ``EDQUOT`` (quota used up) or ``EFBIG``
(the file-size limit, ``ulimit -f``). That is not a bug of the
program: the user frees space or writes elsewhere, so the CLI says it in one line
naming the file (:func:`storage_full_message`), wherever the write was: a checkpoint,
``config.yaml``, ``metrics.csv``, predictions, an export.

Over ``ulimit -f`` the kernel sends ``SIGXFSZ``, whose default action kills the process
without a word; CPython ignores it from start-up, so the write fails with ``EFBIG``
instead and is reported like a full disk (``tests/test_disk_full.py`` checks it).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import shutil
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import UserError

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


# Scratch files and folders are named ".<target>.partial-<pid>-<token>": hidden, plainly
# unfinished, and carrying the pid of the process that writes them.
_PARTIAL = re.compile(r"^\.(?P<target>.+)\.partial-(?P<pid>\d+)-(?P<token>[0-9a-f]+)$")
# The scratch paths this process is writing right now (a checkpoint save may run in a thread,
# e.g. under Lightning's AsyncCheckpointIO); the clean-up never touches them.
_in_flight: set[str] = set()
_in_flight_lock = threading.Lock()


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike[str], *, workspace: bool = False, keep_existing_dir: bool = False
) -> Iterator[Path]:
    """A hidden scratch path beside ``target``, renamed onto it in one step when the block ends.

    The block creates the file (or folder) at the path it is given. When it ends, that is
    renamed onto ``target`` with ``os.replace``, atomic on one filesystem: a reader sees the
    old ``target`` or the new one, never a mixture; the directory is then fsync'ed, so the
    rename survives a power cut too. When the block raises (a full disk, Ctrl-C), what it
    wrote is removed and ``target`` is left as it was. Only ``kill -9`` leaves something: a
    hidden ``.<name>.partial-<pid>-<token>``, which :func:`remove_stale_partials` recognises.
    This is the one write-beside-then-rename of the package: small files
    (:func:`write_atomically`), checkpoints, exports and downloaded datasets all go through it.

    Args:
        target: The file or folder to create or replace; its parent is created if needed.
        workspace: Give the block ``<hidden scratch folder>/<target's name>`` instead, so it may
            write other files beside it (a download's archive, say), discarded with the folder.
        keep_existing_dir: When a folder is already at ``target`` at the rename (another process,
            say a second node on a shared disk, finished first), keep it and discard this one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = _reserve_scratch(target)
    try:
        if workspace:
            scratch.mkdir()
        staged = scratch / target.name if workspace else scratch
        yield staged
        try:
            os.replace(staged, target)
        except OSError:
            if not (keep_existing_dir and target.is_dir()):
                raise
        fsync_directory(target.parent)
    finally:  # BaseException too: never leave a scratch path that could be removed
        if scratch.is_dir() and not scratch.is_symlink():
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            scratch.unlink(missing_ok=True)
        with _in_flight_lock:
            _in_flight.discard(str(scratch))


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A new binary file that replaces ``target`` when the block ends (:func:`atomic_path`).

    The file is created as any new file is (mode ``0o666`` less the umask, not
    ``tempfile.mkstemp``'s ``0o600``, which the rename would give ``target``), and its
    bytes are flushed and fsync'ed before the rename can be.
    """
    with atomic_path(target) as scratch, open(scratch, "xb") as file:
        yield file
        file.flush()
        os.fsync(file.fileno())


def write_atomically(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a hidden file beside it and one rename (:func:`atomic_file`).

    A reader sees the old file or the new one, never a mixture; a write that fails (a
    full disk, a kill) leaves the old file as it was and removes what it wrote, except
    after ``kill -9``, when a hidden ``.<name>.partial-<pid>-<token>`` may remain.
    """
    with atomic_file(path) as file:
        file.write(data.encode() if isinstance(data, str) else data)


def remove_stale_partials(directory: str | os.PathLike[str]) -> None:
    """Remove the scratch files in ``directory`` that no write is writing any more.

    A scratch file belongs to the process whose pid is in its name. It is stale when that
    process is dead (killed during a write), or when it is this process but not one of its
    writes in flight (a dead process whose pid this one reuses, as after a restart in a
    container). A scratch file of another *live* process is kept, since that process may
    still be writing it: the price is a leftover file when an unrelated process happens to
    hold a dead writer's pid, never a write broken under a writer's feet. Processes on
    other hosts sharing the directory over NFS look dead from here.

    Args:
        directory: Where the writes go (a run's checkpoint directory).
    """
    for entry in os.scandir(directory):
        match = _PARTIAL.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        with _in_flight_lock:
            stale = entry.path not in _in_flight if pid == os.getpid() else not _is_alive(pid)
        if stale:
            Path(entry.path).unlink(missing_ok=True)  # missing: removed meanwhile by another cleaner


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable, where the OS can fsync a directory."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows: directories cannot be opened for fsync
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as error:  # some filesystems do not support it; a real I/O error still raises
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _reserve_scratch(target: Path) -> Path:
    """A free ``.<target>.partial-<pid>-<token>`` beside ``target``, marked as in flight."""
    while True:
        scratch = target.with_name(f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
        with _in_flight_lock:
            if str(scratch) not in _in_flight and not os.path.lexists(scratch):
                _in_flight.add(str(scratch))
                return scratch


def _is_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as alive)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate it on Windows: assume alive, keep the file
        return True
    try:
        os.kill(pid, 0)  # signal 0: no signal sent, only the existence check
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class StorageFullError(UserError, OSError):
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

    Unlike :func:`resnet_lightning.cli.user_errors.exception_chain`, a context hidden by
    ``raise ... from None`` is followed too: a library rephrasing a failed write must not
    hide that the disk is full.
    """
    links: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in links):
        links.append(link)
        link = link.__cause__ or link.__context__
    return links
