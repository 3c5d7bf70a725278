"""A front's points with their spread over seeds: what ``confirm:`` adds to pareto.csv and pareto.png.

Per Pareto point and per metric objective, over the point's own trial and its
retrains with further seeds (:mod:`.confirm`): the mean, the standard deviation and
the 95% t-interval of the mean (``resnet_lightning.compare.statistics.mean_interval``,
SciPy's ``ttest_1samp(...).confidence_interval``), each run counted as the objective
counts it (its best epoch). ``vs_cheaper`` compares the first metric objective with
every cheaper point (lower cost: the first cost objective, else MACs): ``shown better``
when the point's interval lies wholly on the better side of every cheaper point's
interval, ``not shown better`` when it overlaps one of them, ``cheapest`` for the
cheapest point; blank until the points are confirmed.

This module reads the search file's ``confirm:`` too; it imports nothing from
``compare`` at import time, since ``compare`` imports the search file's reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from .objectives import Objective
from .space import SearchConfigError

MAX_SEEDS = 999  # a comparison's seeds are 0..999
SHOWN, NOT_SHOWN, CHEAPEST = "shown better", "not shown better", "cheapest"
STATS = ("mean", "std", "ci_low", "ci_high")


def check_confirm_seeds(value: Any, what: str) -> int:
    """``value`` as a number of further seeds per Pareto point: 2 or more.

    Raises:
        SearchConfigError: Naming ``what``, the value and what to pass.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= MAX_SEEDS:
        raise SearchConfigError(
            f"{what} {value!r} is not a number of further seeds; expected an integer from 2 to {MAX_SEEDS} (fewer "
            "retrains give an interval too wide to read), e.g. 3"
        )
    return value


def parse_confirm(spec: Any, path: Path) -> int | None:
    """``confirm: {seeds: K}`` -> K (None without a ``confirm:``).

    Raises:
        SearchConfigError: Not a mapping with ``seeds`` only, or seeds below 2.
    """
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"seeds"}:
        raise SearchConfigError(f"{path}: confirm: {spec!r} is not {{seeds: K}}; e.g. confirm: {{seeds: 3}} retrains each "
                                "Pareto point with 3 further seeds")
    return check_confirm_seeds(spec["seeds"], f"{path}: confirm: seeds:")


@dataclass(frozen=True)
class PointStats:
    """One Pareto point over its seeds: per metric objective its values and interval (None with one value)."""

    values: dict[str, list[float]]
    intervals: dict[str, Any]  # objective -> compare.statistics.Interval, or None
    vs_cheaper: str = ""


def cost_of(trial: FrozenTrial, objectives: list[Objective]) -> float | None:
    """The cost "cheaper" is measured in: the first non-metric objective's value, else the trial's MACs."""
    for index, objective in enumerate(objectives):
        if not objective.is_metric:
            return trial.values[index]
    return trial.user_attrs.get("macs")


def point_stats(front: list[FrozenTrial], objectives: list[Objective],
                retrains: dict[int, list[dict[str, Any]]]) -> dict[int, PointStats]:
    """Each point's values (its trial's, then its retrains') and intervals, and how it compares with cheaper points.

    Args:
        front: The Pareto trials.
        objectives: The search's objectives.
        retrains: Per trial number, the user attributes of each finished retrain (what their reporters recorded).
    """
    from ..compare.statistics import (
        mean_interval,  # late: the compare package imports the search file's reader
    )

    stats = {}
    for trial in front:
        values, intervals = {}, {}
        for index, objective in enumerate(objectives):
            if not objective.is_metric:
                continue
            values[objective.name] = [trial.values[index], *(objective.value(attrs) for attrs in retrains.get(trial.number, []))]
            intervals[objective.name] = mean_interval(values[objective.name]) if len(values[objective.name]) > 1 else None
        stats[trial.number] = PointStats(values, intervals)
    return _with_verdicts(front, objectives, stats)


def _with_verdicts(front: list[FrozenTrial], objectives: list[Objective], stats: dict[int, PointStats]) -> dict[int, PointStats]:
    metric = next((o for o in objectives if o.is_metric), None)
    if metric is None:
        return stats
    out = {}
    for trial in front:
        mine, cost = stats[trial.number].intervals.get(metric.name), cost_of(trial, objectives)
        cheaper = [t for t in front if (c := cost_of(t, objectives)) is not None and cost is not None and c < cost]
        theirs = [stats[t.number].intervals.get(metric.name) for t in cheaper]
        if mine is None or any(i is None for i in theirs):
            verdict = ""  # not confirmed (yet)
        elif not cheaper:
            verdict = CHEAPEST
        elif metric.direction == "maximize":
            verdict = SHOWN if all(mine.low > i.high for i in theirs) else NOT_SHOWN
        else:
            verdict = SHOWN if all(mine.high < i.low for i in theirs) else NOT_SHOWN
        out[trial.number] = PointStats(stats[trial.number].values, stats[trial.number].intervals, verdict)
    return out


def interval_columns(objectives: list[Objective]) -> list[str]:
    """pareto.csv's columns for the intervals."""
    metrics = [o.name for o in objectives if o.is_metric]
    return [*(f"{name} {stat}" for name in metrics for stat in STATS), "seeds", "vs_cheaper"]


def interval_cells(stats: PointStats | None) -> dict[str, Any]:
    """One point's interval columns (blank for a point not confirmed)."""
    if stats is None:
        return {}
    cells: dict[str, Any] = {"vs_cheaper": stats.vs_cheaper}
    for name, interval in stats.intervals.items():
        cells["seeds"] = len(stats.values[name])
        if interval is not None:
            cells.update({f"{name} mean": interval.mean, f"{name} std": interval.std,
                          f"{name} ci_low": interval.low, f"{name} ci_high": interval.high})
    return cells


def front_text(front: list[FrozenTrial], objectives: list[Objective], stats: dict[int, PointStats], labels: dict[int, str]) -> str:
    """The front as lines for ``search --summary``: each point's objectives, and its interval when confirmed."""
    if not front:
        return "Pareto front: no completed trial yet"
    lines = [f"Pareto front ({len(front)} point(s), by cost):"]
    for trial in front:
        values = ", ".join(f"{o.name}={v:.4g}" for o, v in zip(objectives, trial.values))
        text = f"  trial {trial.number} ({labels[trial.number]}): {values}"
        point = stats.get(trial.number)
        for name, interval in (point.intervals.items() if point else ()):
            if interval is not None:
                text += (f"; {name} {interval.mean:.4g} [{interval.low:.4g}, {interval.high:.4g}] "
                         f"over {interval.n} seeds")
        if point and point.vs_cheaper:
            text += f": {point.vs_cheaper}"
        lines.append(text)
    if not any(p.vs_cheaper for p in stats.values()):
        lines.append("  (not confirmed: run the search with --confirm K to retrain each point with K further seeds)")
    return "\n".join(lines)
