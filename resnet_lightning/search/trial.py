"""One trial: an ordinary ``resnet-lightning fit`` in a process of its own.

The worker draws the parameters, runs the fit in a child process (its own run
directory under ``<output>/runs``, its log in ``<output>/logs/trial-NNNN.log``)
and reads back what the child's :class:`~.reporter.SearchTrialReporter` recorded.
A process per trial keeps one trial's crash, leaked memory or CUDA state from
the next, and lets a trial use several GPUs (Lightning's DDP launcher re-runs
the trial's own ``resnet-lightning fit`` command line).

How the child starts (``--trial_process``):

* ``fork`` (default on Linux): the worker, which has imported the CLI once,
  forks and the child runs ``cli_main`` on the trial's arguments. It skips the
  interpreter start and the imports (several seconds of a CPU trial).
* ``fresh``: ``python -m resnet_lightning fit ...``, a new interpreter (the
  default elsewhere; the safe choice if something in the worker dislikes fork).

Outcomes: exit 0 and ``pruned_at_epoch`` recorded -> PRUNED; exit 0 -> COMPLETE
with the objectives' values; anything else -> FAIL, with the one-line reason
taken from the log (the CLI's ``error:`` line, or the exception's last line).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError, one_line
from .config import SearchConfig
from .costs import CostMeter
from .epoch_echo import EpochEcho, trial_name
from .fit_args import fit_args, resolved_config, shown
from .objectives import MEASURES, MissingMetricError
from .repeats import earlier_twin, take_outcome
from .space import SearchConfigError, suggest
from .storage import WORKER_ATTR, this_worker

PROCESSES = ("fork", "fresh")
REPORTER = "resnet_lightning.search.reporter.SearchTrialReporter"
# What every trial adds to the user's options (and best.yaml leaves out).
PLUMBING = ["--trainer.enable_progress_bar=false"]
POLL_SECONDS = 0.1  # how often a waiting worker looks at the trial's log (and whether the trial has ended)
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt)|[\w.]*\bError)\b:?")


class TrialFailed(RuntimeError):
    """A trial's fit did not finish; the message is its one-line reason."""


class MetricNotLoggedError(SearchConfigError):
    """A finished trial's fit never logged an objective: no trial of the search can succeed, so it ends."""


def default_process() -> str:
    """``fork`` where fork is safe and cheap (Linux), else ``fresh``."""
    return "fork" if sys.platform.startswith("linux") else "fresh"


@dataclass
class TrialRunner:
    """The objective Optuna calls: run one trial as a fit and return its objective values.

    Args:
        search: The search file.
        storage: The study's storage address (for the fit's reporter).
        output: The search's output directory.
        study_name: The study (the W&B group of its trials).
        process: ``fork`` or ``fresh`` (see the module docstring).
        prefix: The word its console lines start with (``search``, ``compare``).
    """

    search: SearchConfig
    storage: str
    output: Path
    study_name: str
    process: str = "fork"
    prefix: str = "search"
    cost_meter: CostMeter | None = field(default=None, repr=False)  # made at the first trial

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        self.claim(trial)
        params = suggest(trial, self.search.space)
        shown_as = shown(self.search, params)
        twin = earlier_twin(trial)
        if twin is not None and self._within_todays_budget(twin):
            return self.take_twins_outcome(trial, twin, shown_as)
        self.check_costs(trial, params, shown_as)
        attrs = self.run_fit(trial, params, shown_as)
        self._check_metrics_logged(trial, attrs)
        if "pruned_at_epoch" in attrs:
            raise optuna.TrialPruned(f"pruned at epoch {attrs['pruned_at_epoch']}")
        try:
            values = [objective.value(attrs) for objective in self.search.objectives]
        except MissingMetricError as err:
            self._fail(trial, str(err))
        return values[0] if len(values) == 1 else values

    def take_twins_outcome(self, trial: optuna.Trial, twin: FrozenTrial, shown_as: str) -> float | list[float]:
        """A configuration trained before takes that trial's outcome, untrained (see :mod:`.repeats`)."""
        copied = take_outcome(trial, twin)
        if self.search.constraints:
            self.search.constraints.record(trial, copied)
        print(f"{self.prefix}: trial {trial.number} is trial {twin.number} again ({shown_as}): not trained again",
              file=sys.stderr, flush=True)
        if twin.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"as trial {twin.number}")
        return twin.values[0] if len(twin.values) == 1 else list(twin.values)

    def _within_todays_budget(self, twin: FrozenTrial) -> bool:
        """Whether ``twin``'s recorded costs meet the search's budgets as they are now (they may have changed since)."""
        if not self.search.constraints:
            return True
        costs = {m: twin.user_attrs.get(m) for m in self.search.constraints.measures}
        return None not in costs.values() and not self.search.constraints.violations(costs)

    def claim(self, trial: optuna.Trial) -> None:
        """Record this worker in the trial first thing, so that a rerun after a kill finds the trial orphaned."""
        trial.set_user_attr(WORKER_ATTR, this_worker())

    def check_costs(self, trial: optuna.Trial, params: dict[str, Any], shown_as: str) -> None:
        """Measure the network's costs before its fit (see :mod:`.costs`) and record them; over budget, it never trains.

        Records ``macs``, ``params``, ``latency_ms`` (when used) and ``cost_seconds`` (the whole check). A configuration
        over a ``constraints:`` bound records ``over_budget`` (the reason) and ``epochs: 0`` and is PRUNED.

        Raises:
            TrialFailed: The fit's command line is refused, or the network cannot be built (as the fit would fail).
            optuna.TrialPruned: Over budget.
        """
        if self.cost_meter is None:
            self.cost_meter = CostMeter(self.search.latency)
        start = time.perf_counter()
        try:
            costs = self.cost_meter(resolved_config(fit_args(self.search, params)))
        except UserError as err:
            self._fail(trial, one_line(str(err)))
        costs["cost_seconds"] = round(time.perf_counter() - start, 4)  # the config's resolution included
        for key, value in costs.items():
            trial.set_user_attr(key, value)
        if self.search.constraints:
            self.search.constraints.record(trial, costs)
        over = self.search.constraints.violations(costs) if self.search.constraints else []
        if over:
            reason = "; ".join(over)
            trial.set_user_attr("over_budget", reason)
            trial.set_user_attr("epochs", 0)
            trial.set_user_attr("wall_time", costs["cost_seconds"])
            print(f"{self.prefix}: trial {trial.number} over budget: {reason} (not trained; {shown_as})", file=sys.stderr, flush=True)
            raise optuna.TrialPruned(f"over budget: {reason}")

    def run_fit(self, trial: optuna.Trial, params: dict[str, Any], shown_as: str) -> dict[str, Any]:
        """Run the trial's fit (``params``: dotted fit options); returns what it recorded, or fails the trial.

        Raises:
            TrialFailed: The fit did not finish; the trial's ``fail_reason`` says why.
        """
        log = self.output / "logs" / f"trial-{trial.number:04d}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"{self.prefix}: trial {trial.number} {shown_as} (log {log})", file=sys.stderr, flush=True)
        start = time.perf_counter()
        code = self.launch(self.argv(trial, params), log, self.environment())
        trial.set_user_attr("wall_time", round(time.perf_counter() - start, 3))
        trial.set_user_attr("log", str(log))
        # From the storage: what the fit's process recorded (Trial.user_attrs is this process's cache).
        attrs = trial.study._storage.get_trial(trial._trial_id).user_attrs
        if code != 0:
            self._fail(trial, failure_reason(log, code))
        return attrs

    def _check_metrics_logged(self, trial: optuna.Trial, attrs: dict[str, Any]) -> None:
        """End the search when a fit that ran to its end never logged an objective (or the pruner's metric).

        Every trial's fit logs the same metrics, so the first one that finishes
        shows a misspelt objective; without this every trial would run and FAIL.
        """
        history = attrs.get("history", {})
        watched = [(o.name, "objectives:") for o in self.search.objectives if o.is_metric]
        if self.search.monitor:
            watched.append((self.search.monitor, "pruner: monitor:"))
        for name, where in watched:
            if not any(v is not None for v in history.get(name, [])):
                logged = ", ".join(attrs.get("logged_metrics", [])) or "nothing (it never finished a validation epoch)"
                reason = (
                    f"{name!r} ({where} in {self.search.path}) is not a metric the fit logs: trial {trial.number} logged "
                    f"{logged}; name one of those, or {', '.join(MEASURES)}"
                )
                trial.set_user_attr("fail_reason", reason)
                raise MetricNotLoggedError(reason)

    def _fail(self, trial: optuna.Trial, reason: str) -> None:
        trial.set_user_attr("fail_reason", reason)
        raise TrialFailed(reason)

    def argv(self, trial: optuna.Trial, params: dict[str, Any]) -> list[str]:
        """The trial's ``fit`` command line: the user's arguments, then the search's plumbing."""
        metrics = [o.name for o in self.search.objectives if o.is_metric]
        monitor = self.search.monitor
        reporter = {
            "class_path": REPORTER,
            "init_args": {
                "storage": self.storage,
                "study_name": trial.study.study_name,
                "trial_id": trial._trial_id,  # the id names a trial across processes; the number only within a study
                "trial_number": trial.number,
                "metrics": sorted(set(metrics) | ({monitor} if monitor else set())),
                "monitor": monitor,
                "pruner": self.search.pruner,
                "worker_pid": os.getpid(),
            },
        }
        root = f"--trainer.default_root_dir={self.output.resolve() / 'runs'}"
        # The root goes first so that a fixed trainer.default_root_dir still wins.
        args = fit_args(self.search, params)
        return ["fit", root, *PLUMBING, *args, f"--trainer.callbacks+={json.dumps(reporter)}"]

    def environment(self) -> dict[str, str]:
        """Variables the trial's process gets: a WandbLogger groups the study's trials (unless the user set a group)."""
        env = {}
        if "WANDB_RUN_GROUP" not in os.environ:
            env["WANDB_RUN_GROUP"] = self.study_name
        return env

    def launch(self, argv: list[str], log: Path, env: dict[str, str]) -> int:
        """Run ``resnet-lightning <argv>`` with output to ``log``; returns its exit code (negative: killed by that signal).

        While it runs, the fit's epoch lines are echoed from the log to this worker's console,
        as ``<prefix>: trial N epoch 2/8  val/acc 0.91 ...`` (see :class:`EpochEcho`).
        """
        echo = EpochEcho(log, f"{self.prefix}: {trial_name(log)}")
        if self.process == "fresh":
            with open(log, "w") as out:
                child = subprocess.Popen(
                    [sys.executable, "-m", "resnet_lightning", *argv], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
                )
                return _wait(child.pid, child.poll, child.wait, echo)
        log.write_bytes(b"")  # emptied before the echo first reads it (the child's O_TRUNC may come later)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _run_in_child(argv, log, env)

        def poll() -> int | None:
            done, status = os.waitpid(pid, os.WNOHANG)
            return os.waitstatus_to_exitcode(status) if done else None

        return _wait(pid, poll, lambda: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), echo)


def _wait(pid: int, poll: Any, wait: Any, echo: EpochEcho) -> int:
    """Wait for the trial's process, echoing its epoch lines; on Ctrl+C (which it got too) let it save and stop first."""
    try:
        while (code := poll()) is None:
            echo()
            time.sleep(POLL_SECONDS)
        echo()
        return code
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        wait()
        raise


def _run_in_child(argv: list[str], log: Path, env: dict[str, str]) -> None:
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(env)
        # Lightning's DDP launcher re-runs sys.argv for the other ranks: make it this fit's.
        sys.argv = [sys.argv[0], *argv]
        from ..cli import cli_main

        cli_main()  # reads sys.argv, as the console script does
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - the log gets the traceback, the worker the exit code
        traceback.print_exc()
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish(exit_code=code)  # os._exit skips wandb's atexit hook
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # never unwind into the worker's stack (Optuna's optimize loop)


def failure_reason(log: Path, code: int) -> str:
    """One line saying why a trial's fit failed, from its log and exit code."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    for line in reversed(lines):
        if "resnet-lightning: error:" in line:
            return line.split("resnet-lightning: error:", 1)[1].strip()
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line
    if code < 0:
        name = signal.Signals(-code).name
        return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exit code {code}" + (f": {lines[-1]}" if lines else "")
