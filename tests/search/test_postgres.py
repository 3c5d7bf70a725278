"""Two workers on one study in a real PostgreSQL server (Optuna's RDBStorage), as on many machines.

The server is Debian's ``postgresql`` (``.ci/run`` installs it where it can): a
fresh cluster in a tmp directory (``initdb``), on a free port (``pg_ctl``),
stopped at the end. Skipped, saying why, where the binaries are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from .helpers import GOOD, finish, start_search, tiny_search
from .test_moasha import moasha_search

BIN_DIRS = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15", "14", "13")]


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    return found or next((str(d / name) for d in BIN_DIRS if (d / name).is_file()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[str]:
    """A running server's URL (database ``optuna``), stopped and deleted afterwards."""
    pytest.importorskip("psycopg", reason="PostgreSQL's Python driver psycopg is not installed (pip install -e '.[test]')")
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql; .ci/run tries)")
    as_user: list[str] = []
    # Not under pytest's tmp_path: that is private to this user (0700), and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="rl-search-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the package's own user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
        if shutil.which("runuser") is None:
            shutil.rmtree(root)
            pytest.skip("running as root without runuser to start PostgreSQL as the 'postgres' user")
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)
    run(initdb, "-D", str(data), "-U", "optuna", "--auth=trust", "-E", "UTF8")
    run(pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        run(_binary("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "optuna", "optuna")
        yield f"postgresql://optuna@127.0.0.1:{port}/optuna"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgres_study(tmp_path: Path, postgres: str) -> None:
    search = tiny_search(tmp_path / "tiny.yaml", enqueue=[GOOD, {**GOOD, "model.block": "plain"}], pruner="none")
    # Each worker on its own "machine": its own output directory, one study in the database.
    # One of them starts each trial in a fresh interpreter (--trial_process fresh).
    workers = [
        start_search("--config", str(search), "--storage", postgres, "--n_trials", "3", "--output", "a", cwd=tmp_path),
        start_search("--config", str(search), "--storage", postgres, "--n_trials", "3", "--output", "b",
                     "--trial_process", "fresh", cwd=tmp_path),
    ]
    for worker in workers:
        finish(worker)
    study = optuna.load_study(study_name="tiny", storage=postgres)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len([t for t in study.trials if t.state.is_finished()]) >= 3
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both workers took trials
    assert complete and all(t.user_attrs["macs"] > 0 for t in complete)
    for out in ("a", "b"):
        assert (tmp_path / out / "trials.csv").is_file()


def test_two_workers_run_moasha_on_a_postgres_study(tmp_path: Path, postgres: str) -> None:
    """MO-ASHA reads the other worker's rung values from the database: every trial is ranked at the rung, some stop there."""
    good = {"model.block": "basic", "model.optimizer.init_args.lr": 0.1}
    search = moasha_search(tmp_path, enqueue=(good, {**good, "model.optimizer.init_args.lr": 1.0e-5}), rungs=[1])
    workers = [start_search("--config", str(search), "--storage", postgres, "--n_trials", "5", "--output", out, cwd=tmp_path)
               for out in ("a", "b")]
    for worker in workers:
        finish(worker)
    trials = optuna.load_study(study_name="tiny", storage=postgres).trials
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert all("1" in t.user_attrs["rung_values"] for t in trials)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.user_attrs["pruned_at_epoch"] == 0 and t.user_attrs["epochs"] == 1 for t in pruned)
    assert any(t.state == TrialState.COMPLETE and t.user_attrs["epochs"] == 3 for t in trials)
