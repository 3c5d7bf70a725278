"""A search killed with SIGKILL and started again continues its study.

The worker is killed in the middle of a trial's fit. Its fit notices that its
worker is gone and stops itself (saving its state); the rerun marks the orphaned
trial FAIL, queues its parameters again, runs that copy (the killed trial does
not count towards ``--n_trials``) and finishes the study.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from resnet_lightning.search.storage import counted_trials, open_storage, retry_once

from .helpers import GOOD, finish, journal_study, start_search, tiny_search


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_kill_and_rerun_continues_the_same_study(tmp_path: Path) -> None:
    # Four short epochs, so the kill lands in the middle of the first trial's fit. One trial in all: the
    # killed trial must not count towards --n_trials, or the rerun would stop before its requeued copy ran.
    search = tiny_search(tmp_path / "tiny.yaml", enqueue=[GOOD], pruner="none")
    search.write_text(search.read_text().replace(
        "trainer.max_epochs: 2", "trainer.max_epochs: 4\n  trainer.limit_train_batches: 6\n  trainer.limit_val_batches: 3"))
    args = ["--config", str(search), "--n_trials", "1", "--output", "out"]
    worker = start_search(*args, cwd=tmp_path)
    journal = tmp_path / "out" / "study.journal"

    def running_fit() -> dict | None:
        study = journal_study(journal) if journal.is_file() and journal.stat().st_size else None
        trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if study else []
        return trials[0].user_attrs if trials and "epochs" in trials[0].user_attrs else None  # one epoch validated

    attrs = _wait_for(running_fit, 180, "the first trial's fit to finish an epoch")
    fit_pid = json.loads((Path(attrs["run_dir"]) / "run.json").read_text())["pid"]
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=30)
    # The orphaned fit stops itself at its next batch (SIGTERM: it saves last.ckpt and exits).
    _wait_for(lambda: not _alive(fit_pid), 60, f"the orphaned fit (pid {fit_pid}) to stop")
    assert (Path(attrs["run_dir"]) / "checkpoints" / "last.ckpt").is_file()
    killed = journal_study(journal).trials[0]
    assert killed.state == TrialState.RUNNING  # as the kill left it

    out = finish(start_search(*args, cwd=tmp_path))
    assert "trial 0 was left running by a killed worker on this host: FAIL, queued again" in out
    assert "already holds" not in out
    study = journal_study(journal)
    assert study.trials[0].state == TrialState.FAIL and "stopped while it ran" in study.trials[0].user_attrs["fail_reason"]
    (retried,) = [t for t in study.trials[1:] if t.system_attrs.get("failed_trial") == 0]
    assert retried.params == killed.params and retried.state == TrialState.COMPLETE  # the requeued trial ran
    assert retried.user_attrs["epochs"] == 4 and "fail_reason" not in retried.user_attrs  # a fresh run, not the dead one's
    assert retried.user_attrs["run_dir"] != attrs["run_dir"]
    assert [t.number for t in study.trials if t.state.is_finished()] == [0, retried.number]  # nothing else ran
    assert (tmp_path / "out" / "best.yaml").is_file()

    assert [t.number for t in counted_trials(study)] == [retried.number]


def test_a_requeued_trial_starts_clean_runs_once_and_replaces_the_dead_one(tmp_path: Path) -> None:
    # What Optuna's heartbeat (databases) and a rerun after a kill (any storage) do with a trial whose worker died.
    study = optuna.create_study(storage=open_storage(str(tmp_path / "study.journal")), study_name="s", direction="maximize")
    dead = study.ask({"x": FloatDistribution(0.0, 1.0)})
    dead.set_user_attr("pruned_at_epoch", 0)  # what the dead run had recorded: its rerun must not inherit it
    study.tell(dead, state=TrialState.FAIL)
    retry_once(study, study.trials[0])
    waiting = study.trials[1]
    assert waiting.state == TrialState.WAITING and waiting.params == dead.params and waiting.user_attrs == {}
    assert counted_trials(study) == []  # the dead trial does not count: its rerun takes its place
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    rerun = study.trials[1]
    assert rerun.state == TrialState.COMPLETE and rerun.params == dead.params
    assert [t.number for t in counted_trials(study)] == [1]
    # A rerun that dies too is not queued a third time (a trial that kills its worker would loop forever).
    again = study.ask()
    study.tell(again, state=TrialState.FAIL)
    frozen = study.trials[2]
    frozen.system_attrs.update({"failed_trial": 0, "retry_history": [0]})
    retry_once(study, frozen)
    assert len(study.trials) == 3
