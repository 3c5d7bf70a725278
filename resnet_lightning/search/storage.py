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
and of other hosts, are never touched that way, except a trial that never recorded
its worker (it died the moment it took the trial), once ``GRACE_SECONDS`` have passed
since the trial started. A trial failed because its worker died does not count towards ``n_trials``: its rerun (or another trial) takes its place.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import time
import warnings
from datetime import datetime
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError

JOURNAL_FILE = "study.journal"
WORKER_ATTR = "worker"  # "host:pid" of the search process that runs the trial
INTERRUPTED_ATTR = "interrupted"  # set on a trial failed because its worker died: it did not run to an outcome
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180
# The drivers SQLAlchemy 2.1 uses for plain postgresql:// and mysql:// URLs.
DRIVERS = {"postgresql": "'psycopg[binary]'", "mysql": "mysqlclient"}


class StorageError(UserError, ValueError):
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
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by open_storage itself; still no password
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", address)


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
            _check_journal(path)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as err:
            raise StorageError(f"cannot open journal file {path}: {err.strerror or err}; pick a writable --output or --storage") from None
    _check_url(address)
    scheme = address.split("://", 1)[0].split("+", 1)[0]
    engine_kwargs = {"connect_args": {"connect_timeout": 10}} if scheme in ("postgresql", "mysql") else {}
    options = {}
    if heartbeat:
        options = dict(
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=retry_once,
        )
    try:
        return _rdb_storage(address, engine_kwargs, options)
    except ImportError:  # Optuna re-raises the driver's ModuleNotFoundError as an ImportError of its own
        driver = DRIVERS.get(scheme, "the SQLAlchemy driver named in the URL (DIALECT+DRIVER://...)")
        raise StorageError(f"--storage {shown(address)}: the database driver for {scheme} is not installed; pip install {driver}") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's errors come in many classes; the first line says which
        first = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        if scheme == "sqlite":
            raise StorageError(
                f"cannot open SQLite database {shown(address)}: {first}; check that its directory exists and is writable "
                "and that the file, if there, is an SQLite database (sqlite:///relative.db, sqlite:////absolute/path.db)"
            ) from None
        raise StorageError(
            f"cannot open storage {shown(address)}: {first}; check that the server runs and that the URL "
            "(e.g. postgresql://USER:PASSWORD@HOST:5432/DB) is right"
        ) from None


def _check_journal(path: Path) -> None:
    """Refuse a journal file with a line that is not one of Optuna's JSON records.

    Optuna skips an unreadable *last* line (it may be a record being written) and
    would append after it, leaving a file no reader can open; a damaged or foreign
    file is refused here instead, before anything is added to it.
    """
    if not path.is_file():
        return
    with open(path, "rb") as journal:
        for number, line in enumerate(journal, 1):
            if not line.endswith(b"\n"):
                break  # a record another worker is writing right now
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                record = None
            if not isinstance(record, dict) or "op_code" not in record:
                raise StorageError(
                    f"journal file {path} is damaged or not an Optuna journal (line {number} is not one of its records); "
                    "move it away to start a new study there, or pass another --output or --storage"
                )


def _check_url(address: str) -> None:
    """Refuse a URL that is no database, or a database the trials' own processes cannot reach, before connecting."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    example = "e.g. postgresql://USER:PASSWORD@HOST:5432/DB, sqlite:///study.db, or a journal file path"
    try:
        url = make_url(address)
    except (ArgumentError, ValueError) as err:
        raise StorageError(f"--storage {shown(address)}: not a database URL ({' '.join(str(err).split())}); {example}") from None
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise StorageError(f"--storage {shown(address)}: unknown database kind {url.drivername!r}; {example}") from None
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise StorageError(
            f"--storage {shown(address)} is a database in one process's memory, and every trial runs in a process of its "
            "own; give it a file: sqlite:///study.db (or leave --storage out for the default journal file)"
        )


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


def retry_once(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a trial whose worker died again, once, with the same parameters.

    Optuna's ``RetryHeartbeatStaleTrialCallback(max_retry=1)`` does the same but
    copies the dead trial's user attributes into the new one (its ``fail_reason``,
    a ``pruned_at_epoch`` that would prune the rerun at once); the rerun starts clean
    here, with Optuna's ``failed_trial`` / ``retry_history`` system attributes.
    Used as the RDB heartbeat's stale-trial callback and by :func:`fail_orphaned_trials`.
    """
    history = list(trial.system_attrs.get("retry_history", []))
    if history:  # a retry that died too: not again (a trial that kills its worker would loop)
        return
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            system_attrs={"failed_trial": trial.number, "retry_history": [trial.number]},
        )
    )


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that count towards ``n_trials``: finished ones that ran to their outcome.

    A trial failed because its worker died (:data:`INTERRUPTED_ATTR`, or queued again
    by the heartbeat) did not: it is not counted, so its rerun, or another trial, runs
    in its place.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("retry_history", [None])[-1] for t in trials if t.system_attrs.get("retry_history")}
    return [
        t for t in trials
        if t.state in FINISHED and not (t.state == TrialState.FAIL and (t.user_attrs.get(INTERRUPTED_ATTR) or t.number in retried))
    ]


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


def fail_orphaned_trials(study: optuna.Study) -> dict[int, bool]:
    """Mark FAIL the RUNNING trials whose worker was a process on this host that no longer exists.

    Each is queued again once, with the same parameters (:func:`retry_once`), so a
    rerun of a killed search redoes it; none of them counts towards ``n_trials``
    (:func:`counted_trials`).

    Returns:
        ``{number: queued again}`` for each trial marked FAIL.
    """
    host = socket.gethostname()
    failed = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        worker_host, _, pid = worker.rpartition(":")
        if not worker:
            # A worker records itself a moment after it takes a trial (TrialRunner.claim); a trial
            # without one long after its start lost its worker in between, on whatever host.
            started = trial.datetime_start
            if started is None or (datetime.now() - started).total_seconds() < GRACE_SECONDS:
                continue
            worker = "unknown"
        elif worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"its worker {worker} stopped while it ran (killed?)")
            study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, True)
            study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # another worker, started at the same moment, did it first
            if study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
                continue
            raise
        before = len(study.get_trials(deepcopy=False))
        retry_once(study, study._storage.get_trial(trial._trial_id))
        failed[trial.number] = len(study.get_trials(deepcopy=False)) > before
    return failed
