"""The runs of a comparison: trials of an Optuna study, one per variant x seed, each a ``fit`` then a ``test``.

A comparison is a study whose trials are a grid the worker queues itself
(``enqueue_trial``): every (variant, seed) pair that has no finished or pending
trial is queued, seed by seed (every variant's seed 0 first), so that a comparison
stopped half way already holds paired results. Workers on one storage (the journal
file, or PostgreSQL across machines) take queued trials until none is left; a rerun
after a kill queues only what is missing, and retries the runs that failed.

Each trial is the search's :class:`~resnet_lightning.search.trial.TrialRunner` fit
(its own process, run directory and log; its reporter records every epoch's
training and validation accuracy, the MACs and the parameters), followed by
``resnet-lightning test`` of that run's best checkpoint in a second process,
which records the test metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import runs
from ..search.objectives import MissingMetricError
from ..search.trial import TrialFailed, TrialRunner, failure_reason
from .config import CompareConfigError, Comparison

DUPLICATE_ATTR = "duplicate_of"  # a trial that found its pair already taken (two workers queued it at once): nothing ran


class MetricNotLoggedError(CompareConfigError):
    """A run finished without logging a metric the comparison reports: none of its runs can report it, so it ends."""


def pair(trial: FrozenTrial) -> tuple[str, int] | None:
    """(variant, seed) of a trial, queued (fixed parameters) or running/finished (parameters)."""
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    if "variant" not in params or "seed" not in params:
        return None
    return str(params["variant"]), int(params["seed"])


def results(study: optuna.Study) -> dict[tuple[str, int], FrozenTrial]:
    """The finished run of each (variant, seed): its first COMPLETE trial."""
    done: dict[tuple[str, int], FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = pair(trial)
        if key is not None and key not in done:
            done[key] = trial
    return done


def queue_missing_runs(study: optuna.Study, comparison: Comparison) -> list[tuple[str, int]]:
    """Queue every (variant, seed) with no COMPLETE, RUNNING or WAITING trial; returns them in the order queued."""
    taken = {pair(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))}
    missing = [(v, s) for s in range(comparison.seeds) for v in comparison.variants if (v, s) not in taken]
    for variant, seed in missing:
        study.enqueue_trial({"variant": variant, "seed": seed})
    return missing


def stop_when_queue_is_empty(study: optuna.Study, trial: FrozenTrial) -> None:
    """A comparison has no sampler to ask: when no queued run is left, this worker is done."""
    if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.stop()


@dataclass
class CompareRunner(TrialRunner):
    """Run one variant x seed: the fit, then the test of its best checkpoint; returns the headline metric."""

    comparison: Comparison | None = None
    prefix: str = "compare"

    def __call__(self, trial: optuna.Trial) -> float:
        self.claim(trial)
        comparison = self.comparison
        variant = trial.suggest_categorical("variant", list(comparison.variants))
        seed = trial.suggest_int("seed", 0, self.search.space["seed"].high)
        self._refuse_a_second_run(trial, (variant, seed))
        options = comparison.options(variant, seed)
        attrs = self.run_fit(trial, options, f"{variant} seed {seed}")
        test_metrics = self._test(trial, options, Path(attrs["run_dir"]))
        values = {}
        for metric in comparison.metrics:
            try:
                values[metric] = metric_value(metric, attrs, test_metrics)
            except MissingMetricError as err:
                logged = sorted(set(attrs.get("logged_metrics", [])) | set(test_metrics))
                reason = (f"{metric!r} (metrics: in {comparison.path}) is not a metric the runs log: {err}; "
                          f"they log {', '.join(logged)}; name one of those")
                trial.set_user_attr("fail_reason", reason)
                raise MetricNotLoggedError(reason) from None
        trial.set_user_attr("values", values)
        return values[comparison.metrics[0]]

    def _refuse_a_second_run(self, trial: optuna.Trial, key: tuple[str, int]) -> None:
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if other.number != trial.number and pair(other) == key:
                trial.set_user_attr(DUPLICATE_ATTR, other.number)
                self._fail(trial, f"{key[0]} seed {key[1]} is trial {other.number}'s already (two workers queued it): not run twice")

    def _test(self, trial: optuna.Trial, options: dict[str, Any], run_dir: Path) -> dict[str, float]:
        """``resnet-lightning test`` of the run's best checkpoint, in its own process; the metrics it logged."""
        best = best_checkpoint(run_dir)
        log = self.output / "logs" / f"trial-{trial.number:04d}-test.log"
        argv = ["test", *self.argv(trial, options)[1:], f"--ckpt_path={best}"]
        code = self.launch(argv, log, self.environment())
        if code != 0:
            self._fail(trial, "its test failed: " + failure_reason(log, code))
        return trial.study._storage.get_trial(trial._trial_id).user_attrs.get("test_metrics", {})


def best_checkpoint(run_dir: Path) -> Path:
    """The best checkpoint ``last.ckpt`` of the run records (``last.ckpt`` itself when none is)."""
    from ..cli.run_choice import pick_checkpoint  # late: imports Lightning

    return pick_checkpoint(runs.checkpoint_dir(run_dir), "best")


def metric_value(metric: str, attrs: dict[str, Any], test_metrics: dict[str, float]) -> float:
    """A ``test/`` metric from the test; any other at the fit's last epoch.

    Raises:
        MissingMetricError: Neither logged it.
    """
    if metric.startswith("test/"):
        if metric not in test_metrics:
            raise MissingMetricError(f"the test of the best checkpoint did not log {metric!r}")
        return float(test_metrics[metric])
    history = [v for v in attrs.get("history", {}).get(metric, []) if v is not None]
    if not history:
        raise MissingMetricError(f"the fit did not log {metric!r}")
    return history[-1]


def failed_runs(study: optuna.Study) -> list[FrozenTrial]:
    """Per (variant, seed) with no result, its latest FAIL trial that ran (not a duplicate), in trial order."""
    done = results(study)
    latest = {
        pair(t): t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if pair(t) is not None and pair(t) not in done and DUPLICATE_ATTR not in t.user_attrs
    }
    return sorted(latest.values(), key=lambda t: t.number)


__all__ = ["CompareRunner", "TrialFailed", "queue_missing_runs", "results", "stop_when_queue_is_empty"]
