"""Confirming a front: each Pareto point retrained with K further seeds, as a comparison.

``confirm: {seeds: K}`` in the search file (after the search's trials), or
``resnet-lightning search --config SEARCH.yaml --confirm K`` on the study as it stands,
retrains every Pareto point with K seeds other than the ``seed_everything`` its own
trial ran with (the K smallest ones), each an ordinary fit.

It is a comparison (:mod:`resnet_lightning.compare`): a study named ``<study>-confirm``
in the search's own storage, whose trials are variants x seeds. A variant is a point,
``trial-NNNN``, its options the trial's parameters; the runs are the comparison's
(:class:`~resnet_lightning.compare.runner.CompareRunner`, without the test of the best
checkpoint: the objectives are what the fit logs). So a confirmation resumes after a
kill (only the missing runs are queued again), several workers share it, and a rerun
after it finished runs nothing. Runs go under ``OUTPUT/confirm/runs``, logs under
``OUTPUT/confirm/logs``; :mod:`.intervals` turns them into pareto.csv's intervals.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..compare.config import Comparison
from ..compare.runner import CompareRunner, pair, results, stop_when_queue_is_empty
from ..errors import UserError
from .config import SearchConfig
from .outputs import confirm_study_name, trial_seed, variants
from .storage import fail_orphaned_trials, open_storage
from .trial import TrialFailed


class NothingToConfirmError(UserError, ValueError):
    """``--confirm`` on a study without a completed trial."""


def further_seeds(own: int | None, k: int) -> list[int]:
    """The K smallest seeds other than the trial's own."""
    return [s for s in range(k + 1) if s != own][:k]


@dataclass
class ConfirmRunner(CompareRunner):
    """A comparison run without its test: a confirmation compares what the fit logged."""

    prefix: str = "confirm"

    def _test(self, trial: optuna.Trial, options: dict[str, Any], run_dir: Path) -> dict[str, float]:
        return {}


def plan(study: optuna.Study, front: list[FrozenTrial], search: SearchConfig, k: int) -> tuple[Comparison, dict[str, list[int]]]:
    """The comparison of the study's Pareto points ``front``, and each point's further seeds.

    Raises:
        NothingToConfirmError: The study has no completed trial.
    """
    if not front:
        raise NothingToConfirmError(
            f"--confirm {k}: study {study.study_name!r} has no completed trial, so no Pareto point to retrain; run the "
            "search first (the same command without --confirm), then confirm"
        )
    names = variants(front)
    points = {t.number: t for t in front if names[t.number] == f"trial-{t.number:04d}"}  # one per configuration
    options = {names[n]: dict(t.params) for n, t in points.items()}
    comparison = Comparison(
        path=search.path, name=confirm_study_name(study.study_name), configs=search.configs, baseline=next(iter(options)),
        variants=options, seeds=k, metrics=[o.name for o in search.objectives if o.is_metric] or ["val/acc"],
        fixed=search.fixed,
    )
    return comparison, {names[n]: further_seeds(trial_seed(t, search), k) for n, t in points.items()}


def queue_runs(study: optuna.Study, seeds: dict[str, list[int]]) -> list[tuple[str, int]]:
    """Queue every (point, seed) with no COMPLETE, RUNNING or WAITING run, seed by seed; returns them."""
    taken = {pair(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))}
    depth = max(map(len, seeds.values()))
    missing = [(v, s[i]) for i in range(depth) for v, s in seeds.items() if i < len(s) and (v, s[i]) not in taken]
    for name, seed in missing:
        study.enqueue_trial({"variant": name, "seed": seed})
    return missing


def confirm_front(study: optuna.Study, front: list[FrozenTrial], search: SearchConfig, address: str, output: Path, k: int,
                  process: str) -> None:
    """Retrain each Pareto point (``front``, see :func:`.outputs.pareto_trials`) with ``k`` further seeds not run yet,
    in the study ``<study>-confirm``."""
    comparison, seeds = plan(study, front, search, k)
    storage = open_storage(address, heartbeat=True)
    confirm = optuna.create_study(storage=storage, study_name=comparison.name, direction="maximize", load_if_exists=True,
                                  sampler=optuna.samplers.RandomSampler())
    for number, queued in fail_orphaned_trials(confirm).items():
        print(f"confirm: run {number} was left running by a killed worker on this host: FAIL, "
              f"{'queued again' if queued else 'not queued again'}", file=sys.stderr)
    queued = queue_runs(confirm, seeds)
    print(f"confirm: {len(seeds)} Pareto configuration(s) x {k} further seeds in study {comparison.name!r}: "
          f"{len(queued)} run(s) queued now, {len(results(confirm))} finished", file=sys.stderr)
    if not confirm.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        return
    runner = ConfirmRunner(comparison.as_search(), address, output / "confirm", comparison.name, process, comparison=comparison)
    confirm.optimize(runner, catch=(TrialFailed,), callbacks=[_report, stop_when_queue_is_empty])


def _report(study: optuna.Study, trial: FrozenTrial) -> None:
    name, seed = pair(trial) or ("?", "?")
    what = "" if trial.state == TrialState.COMPLETE else f": {trial.user_attrs.get('fail_reason', '')}"
    print(f"confirm: {name} seed {seed} {trial.state.name}{what} ({trial.user_attrs.get('wall_time', 0):.1f} s, "
          f"run {trial.user_attrs.get('run_dir', '-')})", file=sys.stderr, flush=True)
