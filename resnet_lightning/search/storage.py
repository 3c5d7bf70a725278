"""Where a study lives: a journal file by default, or a database every worker reaches.

* Default: Optuna's ``JournalStorage`` on ``<output>/study.journal``. No server; any
  number of workers on one machine, or on machines sharing the filesystem (NFS),
  append to it under a file lock.
* ``--storage postgresql://USER:PASS@HOST/DB`` (or ``mysql://``, ``sqlite:///FILE``):
  Optuna's ``RDBStorage``, for workers on many machines.
* ``--storage PATH`` (no ``://``): a journal file at PATH.

**Trials left RUNNING by a killed worker.** Optuna's heartbeat (RDB storages
only) marks a trial FAIL when its worker has not been heard from for 3 minutes
(``GRACE_SECONDS``), and queues its parameters again once. The journal file has no
heartbeat, and a rerun right after a kill should not wait either, so every worker
also records ``host:pid`` in its trials and, when it starts, fails (and re-queues
once) RUNNING trials of a dead process on its own host. Trials of live workers,
and of other hosts, are never touched that way.
"""

from __future__ import annotations

import os
import random
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

JOURNAL_FILE = "study.journal"
WORKER_ATTR = "worker"  # "host:pid" of the search process that runs the trial
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180
# The drivers SQLAlchemy 2.1 uses for plain postgresql:// and mysql:// URLs.
DRIVERS = {"postgresql": "'psycopg[binary]'", "mysql": "mysqlclient"}


class StorageError(ValueError):
    """The storage cannot be opened; the message names it, the cause and the fix."""


def storage_address(storage: str | None, output: Path) -> str:
    """The storage a search uses: ``--storage`` as given (a journal path made absolute), or the default journal."""
    if storage is None:
        return str((output / JOURNAL_FILE).resolve())
    return storage if "://" in storage else str(Path(storage).resolve())


def shown(address: str) -> str:
    """The address with any password hidden, for messages."""
    if "://" not in address:
        return address
    from sqlalchemy.engine import make_url

    try:
        return make_url(address).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by open_storage itself
        return address


def open_storage(address: str, heartbeat: bool = False) -> BaseStorage:
    """Open (creating if needed) the storage at ``address``.

    Args:
        address: A database URL (``postgresql://...``, ``sqlite:///...``) or a journal file path.
        heartbeat: Record a heartbeat for running trials and fail stale ones (databases only);
            the search worker sets it, the fit inside a trial does not.

    Raises:
        StorageError: The database is unreachable, its driver is missing, or the file cannot be written.
    """
    if "://" not in address:
        path = Path(address)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as err:
            raise StorageError(f"cannot open journal file {path}: {err.strerror or err}; pick a writable --output or --storage") from None
    scheme = address.split("://", 1)[0].split("+", 1)[0]
    engine_kwargs = {"connect_args": {"connect_timeout": 10}} if scheme in ("postgresql", "mysql") else {}
    options = {}
    if heartbeat:
        options = dict(
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=_retry_once(),
        )
    try:
        return _rdb_storage(address, engine_kwargs, options)
    except ImportError:  # Optuna re-raises the driver's ModuleNotFoundError as an ImportError of its own
        driver = DRIVERS.get(scheme, "the SQLAlchemy driver named in the URL (DIALECT+DRIVER://...)")
        raise StorageError(f"--storage {shown(address)}: the database driver for {scheme} is not installed; pip install {driver}") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's errors come in many classes; the first line says which
        first = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise StorageError(
            f"cannot open storage {shown(address)}: {first}; check that the server runs and that the URL "
            "(e.g. postgresql://USER:PASSWORD@HOST:5432/DB) is right"
        ) from None


def _rdb_storage(address: str, engine_kwargs: dict, options: dict) -> RDBStorage:
    """RDBStorage, retried when workers starting together on a fresh database race to create its tables."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    def connect() -> RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(address, engine_kwargs=engine_kwargs, **options)

    for _ in range(4):
        try:
            return connect()
        except (IntegrityError, ProgrammingError):  # "duplicate key" / "already exists": another worker won the race
            time.sleep(0.5 + random.random())
    return connect()


def _retry_once() -> RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=1)


def this_worker() -> str:
    """``host:pid`` of this process, as recorded in its trials."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def fail_orphaned_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker was a process on this host that no longer exists.

    Each is queued again once, with the same parameters (Optuna's
    ``RetryHeartbeatStaleTrialCallback``), so a rerun of a killed search redoes it.

    Returns:
        The numbers of the trials marked FAIL.
    """
    host = socket.gethostname()
    failed = []
    retry = _retry_once()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"its worker {worker} stopped while it ran (killed?)")
        study.tell(trial.number, state=TrialState.FAIL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry(study, study.get_trials(deepcopy=False)[trial.number])
        failed.append(trial.number)
    return failed
