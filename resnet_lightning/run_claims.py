"""One writer per run, and no run left by a fit that never started training.

A run is written by one process at a time: the fit that writes it holds an
exclusive ``flock`` on its ``run.lock`` (:func:`lock_run`), which the kernel
releases when the process ends however it ends, so a killed fit never keeps its
run locked. ``flock`` is exact on one host's filesystems. On NFS, Linux clients
turn it into a POSIX lock the server arbitrates (NFSv4, or v3 with lockd), so two
hosts exclude each other too; a mount with ``nolock`` or ``local_lock=flock``
keeps the lock local to each host, and a crashed client's lock lasts until the
server's lease expires (about 90 s on NFSv4).

A run directory exists only for a fit that started training: one whose fit fails
before (a misspelt option, missing data, unreachable weights) is removed with
everything in it, and so are the ``<name>/`` (and root) directories its claim
created, if nothing else is in them (:func:`claims`). Nothing here imports
Lightning or torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "run.lock"

# This process's runs: the lock file descriptor of each run it writes (closing it releases the
# lock), the runs it created whose training has not started, and the directories each creation made.
_held: dict[Path, int] = {}
_unstarted: set[Path] = set()
_created_dirs: dict[Path, list[Path]] = {}
# Folders an evaluation logs into: (folder, the folders under it before, the folders its creation makes).
_watched: list[tuple[Path, set[Path], list[Path]]] = []


class RunInUseError(UserError, RuntimeError):
    """Another live process is writing the run; the message names the run and that process."""


def claim_new_run(run_dir: Path, created: list[Path]) -> None:
    """Lock a run this process just created, and remember it as not started (with the directories ``created`` for it).

    Args:
        run_dir: The new run directory.
        created: The directories its creation made, innermost first (``<name>/``, a root).
    """
    _unstarted.add(run_dir)
    _created_dirs[run_dir] = created
    lock_run(run_dir)  # nobody else can hold it yet: the directory is new


def lock_run(run_dir: Path) -> None:
    """Make this process the only writer of ``run_dir`` until it ends (or :func:`release_run`).

    An exclusive, non-blocking ``flock`` on ``<run>/run.lock``, which then names this
    process (pid, host, since when, command line). The kernel drops the lock when the
    process dies, however it dies: a killed fit never keeps its run locked.

    Raises:
        RunInUseError: Another live process holds it; the message names the run and it.
    """
    run_dir = Path(run_dir).resolve()
    if run_dir in _held or fcntl is None:
        return
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held by another process
        holder = _lock_holder(fd)
        os.close(fd)
        raise RunInUseError(
            f"run {run_dir} is being written by {holder}; a run has one writer at a time: wait for that fit "
            f"to end (or stop it), or leave out --ckpt_path to start a new run"
        ) from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "argv": list(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    _held[run_dir] = fd


def _lock_holder(fd: int) -> str:
    """Who holds a run's lock, as its lock file says (the holder writes it just after locking)."""
    for _ in range(20):
        try:
            holder = json.loads(os.pread(fd, 65536, 0) or b"null")
        except ValueError:  # being written
            holder = None
        if isinstance(holder, dict):
            return f"process {holder.get('pid')} on host {holder.get('host')} (since {holder.get('since')})"
        time.sleep(0.05)
    return "another process (its run.lock does not say which yet)"


def release_run(run_dir: Path) -> None:
    """Stop being ``run_dir``'s writer (the lock file stays: removing it would race with the next writer)."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)  # releases the flock


def mark_started(run_dir: Path) -> None:
    """The fit writing ``run_dir`` started training: the run stays, whatever happens next."""
    run_dir = Path(run_dir).resolve()
    _unstarted.discard(run_dir)
    _created_dirs.pop(run_dir, None)


def discard_unstarted(run_dir: Path) -> bool:
    """Remove a run this process created and whose training never started, and the directories its creation made.

    Everything in it was written by this process (the directory was new and locked), so it
    all goes; ``<name>/`` (and a root the claim created) go too when nothing else is in them.

    Returns:
        True when the run was removed; False for a run that started training or that this
        process did not create (a continued run is never removed).
    """
    run_dir = Path(run_dir).resolve()
    if run_dir not in _unstarted:
        return False
    _unstarted.discard(run_dir)
    release_run(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    for directory in _created_dirs.pop(run_dir, []):  # <name>/, then any root it made
        try:
            directory.rmdir()  # only when empty: another fit's run in it stays
        except OSError:
            break
    return True


def watch_for_leftovers(folder: Path) -> None:
    """If the command fails, remove the empty folders it made at or under ``folder`` (where an evaluation logs).

    ``test``/``validate``/``predict`` log into ``<run>/<command>/version_<K>``; one that
    fails before writing anything leaves no empty ``version_<K>`` (nor ``<name>/``) behind.
    """
    folder = Path(folder).resolve()
    before = {p for p in folder.rglob("*") if p.is_dir()} if folder.is_dir() else set()
    _watched.append((folder, before, [d for d in (folder, *folder.parents) if not d.exists()]))


def _remove_empty_leftovers(folder: Path, before: set[Path], created: list[Path]) -> None:
    if folder.is_dir():
        for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # deepest first
            if path not in before and path.is_dir() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.rmdir()  # only when empty: nothing written is removed
    for directory in created:
        try:
            directory.rmdir()
        except OSError:
            break


@contextlib.contextmanager
def claims(completes: bool = True) -> Iterator[None]:
    """Around one command: settle the runs it claims.

    If the command fails, every run it created whose training never started is removed
    (:func:`discard_unstarted`), and so are the empty folders an evaluation made
    (:func:`watch_for_leftovers`). When it ends, having run to completion (``completes``),
    the runs it locked are released and any run it created without training is removed
    too (``fit --trainer.max_epochs 0``). With ``completes=False`` (the caller will run the
    fit itself) a successful command keeps both.
    """
    unstarted, held, watched = set(_unstarted), set(_held), len(_watched)
    try:
        yield
    except BaseException:
        for run_dir in _unstarted - unstarted:
            discard_unstarted(run_dir)
        for run_dir in set(_held) - held:
            release_run(run_dir)
        for leftovers in reversed(_watched[watched:]):
            _remove_empty_leftovers(*leftovers)
        del _watched[watched:]
        raise
    if completes:
        del _watched[watched:]
        for run_dir in _unstarted - unstarted:
            discard_unstarted(run_dir)
        for run_dir in set(_held) - held:
            release_run(run_dir)
